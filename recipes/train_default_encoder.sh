#!/usr/bin/env bash
# Reproduce the default encoder `smollm2-135m-llm2vec`: SmolLM2-135M-Instruct + MNTP + unsupervised SimCSE,
# on openly licensed text fetched from package registries (see recipes/prepare_corpus.py and README.md).
#
# Usage: recipes/train_default_encoder.sh [WORK_DIR]   (default /tmp/llm2vec-default-encoder)
#   STSB_DEV=path/to/stsb-en-dev.csv  logs STS-B dev Spearman during SimCSE (never trained on)
#   SHIP=1                            copies the adapters into llm2vec_plugins/assets/smollm2-135m-llm2vec
#   MNTP_STEPS, SIMCSE_STEPS          override the step counts (sized for < 1 h on 2 CPU cores shared
#                                     with other jobs: 50-80 s per step when 4 other jobs share them)
set -euo pipefail
WORK=${1:-/tmp/llm2vec-default-encoder}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
LLM2VEC=${LLM2VEC:-llm2vec}
mkdir -p "$WORK"

# 1. Corpus: download the packages, extract passages (MNTP) and sentences (SimCSE).
[ -s "$WORK/simcse.txt" ] || $PY "$REPO/recipes/prepare_corpus.py" "$WORK"

# 2. MNTP on the base model (masking 20% with '_', as the paper does for Llama-family tokenizers).
nice $LLM2VEC train mntp --model smollm2-135m-instruct --data "$WORK/mntp.txt" --output-dir "$WORK/mntp" \
  --max-steps "${MNTP_STEPS:-20}" --batch-size 8 --max-length 64 --learning-rate 2e-4 --warmup-steps 2 \
  --mask-probability 0.2 --mask-token _ --lora-r 16 --lora-alpha 32 \
  --save-steps 10 --logging-steps 2 --save-dtype bfloat16 --resume latest

# 3. SimCSE on top of the MNTP adapter (merged into the base), attention dropout 0.3, scale 20.
nice $LLM2VEC train simcse --model "$WORK/mntp" --data "$WORK/simcse.txt" --output-dir "$WORK/simcse" \
  --max-steps "${SIMCSE_STEPS:-25}" --batch-size 32 --max-length 32 --learning-rate 2e-4 --warmup-steps 2 \
  --scale 20 --attention-dropout 0.3 --lora-r 16 --lora-alpha 32 \
  --save-steps 5 --logging-steps 1 --save-dtype bfloat16 --resume latest \
  ${STSB_DEV:+--eval-sts "$STSB_DEV" --eval-steps 0 --eval-max-pairs 150}

# 4. Ship: only the adapter weights and configs (the base tokenizer is used at load time).
if [ "${SHIP:-0}" = 1 ]; then
  for stage in mntp simcse; do
    dest="$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec/$stage"
    mkdir -p "$dest"
    cp "$WORK/$stage"/{adapter_config.json,adapter_model.safetensors,llm2vec_config.json,llm2vec_training.json,train_summary.json} "$dest/"
  done
  # The SimCSE adapter was trained on base + merged MNTP; record the base by its offline alias rather than
  # this machine's work folder (the alias `smollm2-135m-llm2vec` stacks the two folders itself).
  $PY - "$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec/simcse/adapter_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["base_model_name_or_path"] = "smollm2-135m-instruct"
open(sys.argv[1], "w").write(json.dumps(config, indent=2) + "\n")
PY
  du -sh "$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec"
fi
