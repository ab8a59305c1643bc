#!/usr/bin/env bash
# Reproduce the default encoder `smollm2-135m-llm2vec`: SmolLM2-135M-Instruct + MNTP + supervised contrastive
# training, on openly licensed text fetched from package registries plus the *train* split of STS-B with every
# pair that touches an evaluation set removed (see recipes/prepare_corpus.py, recipes/prepare_pairs.py, README.md).
# The unsupervised SimCSE stage is trained too, for the README's comparison; it is not part of the shipped encoder.
#
# Usage: recipes/train_default_encoder.sh [WORK_DIR]   (default /tmp/llm2vec-default-encoder)
#   DATA=path/to/shared/data          STS-B train + the evaluation sets to exclude (default ../shared/data)
#   STSB_DEV=path/to/stsb-en-dev.csv  logs STS-B dev Spearman during training (never trained on)
#   SHIP=1                            copies the mntp + supervised adapters into llm2vec_plugins/assets
#   MNTP_STEPS, SIMCSE_STEPS, SUPERVISED_STEPS  override the step counts (sized for a 2-core CPU:
#                                     ~35 s per supervised step, 50-80 s per step when other jobs share it)
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

# 4. Supervised contrastive training on top of the MNTP adapter, as the paper's supervised models are:
#    (instruction + query, positive, one mined hard negative), scale 50, batches from one source at a time.
[ -s "$WORK/supervised.jsonl" ] || $PY "$REPO/recipes/prepare_pairs.py" "$WORK" --data "${DATA:-$REPO/../shared/data}"
nice $LLM2VEC train supervised --model "$WORK/mntp" --data "$WORK/supervised.jsonl" --output-dir "$WORK/supervised" \
  --max-steps "${SUPERVISED_STEPS:-120}" --batch-size 32 --max-length 64 --learning-rate 2e-4 --warmup-steps 8 \
  --scale 50 --num-hard-negatives 1 --lora-r 16 --lora-alpha 32 --gradient-checkpointing \
  --save-steps 10 --logging-steps 1 --save-dtype bfloat16 --resume latest \
  ${STSB_DEV:+--eval-sts "$STSB_DEV" --eval-steps 40 --eval-max-pairs 200}

# 5. Ship: only the adapter weights and configs (the base tokenizer is used at load time).
if [ "${SHIP:-0}" = 1 ]; then
  for stage in mntp supervised; do
    dest="$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec/$stage"
    mkdir -p "$dest"
    cp "$WORK/$stage"/{adapter_config.json,adapter_model.safetensors,llm2vec_config.json,llm2vec_training.json,train_summary.json} "$dest/"
  done
  # The supervised adapter was trained on base + merged MNTP; record the base by its offline alias rather than
  # this machine's work folder (the alias `smollm2-135m-llm2vec` stacks the two folders itself).
  $PY - "$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec/supervised/adapter_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["base_model_name_or_path"] = "smollm2-135m-instruct"
open(sys.argv[1], "w").write(json.dumps(config, indent=2) + "\n")
PY
  du -sh "$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec"
fi
