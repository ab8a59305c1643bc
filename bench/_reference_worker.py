"""Run the reference `llm2vec` 0.2.3 in ITS OWN venv (transformers 4.44) and write embeddings as .npy.

Not run by hand: `parity_reference.py` and `encode_speed.py` start it with the reference venv's python
(`/work/refvenv/bin/python`), because the reference pins transformers 4.x and our package needs 5.x, so
the two can never share a process. It imports only the reference and numpy/torch, never our package.

Usage: python _reference_worker.py request.json
request.json:
    {"model": "<folder loadable by transformers 4.44, or a hub id>", "threads": 2,
     "peft_model": null, "merge_peft": false,
     "jobs": [{"pooling_mode": "mean", "skip_instruction": true, "batch_size": 32,
               "sentences": ["text", ...] or [["instruction", "text"], ...],
               "out": "/path/emb.npy", "warmup": 0, "tokens_out": null}]}
Optional "peft_model" (a folder or hub id) and "merge_peft" are passed to the reference's
`from_pretrained` as `peft_model_name_or_path=` and `merge_peft=` (omitted: not passed at all).
Optional "offline_hub_adapters": true lets peft < 0.13 load an adapter BY HUB ID from the local cache
with HF_HUB_OFFLINE=1: its `load_peft_weights` asks the hub whether adapter_model.safetensors exists
even offline, and fails (transformers#31700, fixed in peft 0.13 by peft#1976); the flag answers that
question from the cache instead, which is what peft 0.13 does. Omitted: peft is not touched.
Every job's embeddings (float32, input order) go to its "out" path, and one JSON line per job is
printed, {"out": ..., "encode_seconds": ..., "cpu_seconds": ...}, timing only the reference's `encode()`
call (wall clock, and CPU time of the process, which a busy shared machine distorts less).
`warmup` > 0 first encodes that many sentences untimed (first-call allocations, kernel selection).
`tokens_out` names a JSON file that receives, per sentence, the reference's own token ids and pooled
mask (its tokenization of that sentence alone, so no padding), for diagnosing parity failures.
"""
import json
import sys
import time

import numpy as np
import torch


def reference_tokens(model, sentence) -> dict:
    """The ids and pooled-token mask the reference builds for one sentence, via its own methods."""
    instruction, text = ("", sentence) if isinstance(sentence, str) else sentence
    features = model.tokenize([model.prepare_for_tokenization(model._convert_to_str(instruction, text))])
    pooled = features["embed_mask"] if model.skip_instruction else features["attention_mask"]
    return {"input_ids": features["input_ids"][0].tolist(), "pooled": pooled[0].tolist()}


def answer_file_exists_from_cache() -> None:
    """Backport of peft#1976 (see the docstring): offline, "is this adapter file in the repo?" is
    answered from the local cache instead of by a hub request that offline mode refuses."""
    import peft.utils.save_and_load as save_and_load
    from huggingface_hub import try_to_load_from_cache

    def file_exists(repo_id, filename, revision=None, repo_type=None, token=None):
        return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision, repo_type=repo_type), str)

    save_and_load.file_exists = file_exists


def main(request_path: str) -> None:
    with open(request_path) as f:
        request = json.load(f)
    torch.set_num_threads(int(request.get("threads", 2)))
    from llm2vec import LLM2Vec

    if request.get("offline_hub_adapters"):
        answer_file_exists_from_cache()

    loaded = {}
    for job in request["jobs"]:
        mode = job["pooling_mode"]
        if mode not in loaded:  # one load per pooling mode, as a reference user would call it
            extra = {}
            if request.get("peft_model") is not None:
                extra["peft_model_name_or_path"] = request["peft_model"]
            if request.get("merge_peft"):
                extra["merge_peft"] = True
            loaded[mode] = LLM2Vec.from_pretrained(
                request["model"], enable_bidirectional=True, pooling_mode=mode, torch_dtype=torch.float32, **extra
            )
        model = loaded[mode]
        # A plain attribute in the reference, read at encode time.
        model.skip_instruction = bool(job.get("skip_instruction", True))
        sentences = [s if isinstance(s, str) else list(s) for s in job["sentences"]]
        batch_size = int(job.get("batch_size", 32))
        if job.get("warmup"):
            model.encode(sentences[: int(job["warmup"])], batch_size=batch_size, show_progress_bar=False,
                         convert_to_numpy=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        emb = model.encode(sentences, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        np.save(job["out"], np.asarray(emb, dtype=np.float32))
        if job.get("tokens_out"):
            with open(job["tokens_out"], "w") as f:
                json.dump([reference_tokens(model, s) for s in sentences], f)
        print(json.dumps({"out": job["out"], "encode_seconds": seconds, "cpu_seconds": cpu_seconds}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
