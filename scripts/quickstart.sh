#!/usr/bin/env bash
# Install, then index the example documents into an embedded Qdrant with the default (offline) encoder
# and search them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh all
# --recreate: a store left by an earlier version (no encoder identity) or another encoder is rebuilt.
.venv/bin/llm2vec index examples/docs --collection quickstart --qdrant-path .qdrant --recreate
.venv/bin/llm2vec search "How do I make a decoder attend in both directions?" \
    --collection quickstart --qdrant-path .qdrant -k 3
