"""End-to-end Qdrant ingest throughput vs encode-only throughput on the same chunks (target ratio >= 0.9).

Ingest = read -> chunk -> check stored ids -> encode -> upload (in a second thread) into a fresh embedded
Qdrant store; encode-only = `LLM2Vec.encode` on exactly the chunk texts the ingest produced. Runs are
interleaved and the best of `--repeats` kept for each, since the machine may be shared. Besides wall-clock
throughput, chunks per CPU-second of this process are reported: on a shared machine that ratio is the
stable one (it measures the ingest's own overhead; the upload overlaps encoding and mostly waits on I/O).

    python bench/ingest_speed.py --model smollm2-135m-instruct --docs 300
    python bench/ingest_speed.py --path ray      # the Ray path: one encoder actor, same ratio

On the Ray path both sides run on one local encoder actor holding all CPUs: encode-only is the actor encoding
the chunk texts, ingest is the same pipeline (`QdrantIngestor` with `RayEncoders`) planning and writing on the
driver while the actor encodes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.integrations.qdrant.documents import Document
from llm2vec_plugins.evaluation import read_cranfield
from llm2vec_plugins.integrations.qdrant import QdrantIngestor, chunk_records, connect

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval" / "cranfield"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", type=Path, default=CRANFIELD, help="Cranfield folder (cran.all.1400 ...)")
    parser.add_argument("--docs", type=int, default=300, help="first N Cranfield documents")
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--group-chunks", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--path", choices=["local", "ray"], default="local")
    args = parser.parse_args()

    corpus = read_cranfield(args.data).corpus
    source = str(args.data / "cran.all.1400")
    docs = [Document(f"cranfield:{i}", text, source) for i, text in list(corpus.items())[: args.docs]]
    model = LLM2Vec.from_pretrained(args.model)
    model.encode(["warm up the kernels"] * 4)
    encoder, encode = model, lambda texts: model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    if args.path == "ray":
        encoder, encode = _ray_encoder(args)

    def make_ingestor(client) -> QdrantIngestor:
        return QdrantIngestor(encoder, client, "bench", chunk_tokens=args.chunk_tokens, overlap=args.overlap,
                              batch_size=args.batch_size, group_chunks=args.group_chunks)

    with tempfile.TemporaryDirectory() as tmp:
        client = connect(path=Path(tmp) / "store")
        chunker = make_ingestor(client).chunker
        texts = [r.text for d in docs for r in chunk_records(d, chunker)]
        rates: dict[str, list[tuple[float, float]]] = {"encode": [], "ingest": []}  # (wall, cpu) chunks/s
        for repeat in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            encode(texts)
            rates["encode"].append(_rates(len(texts), wall, cpu))
            wall, cpu = time.perf_counter(), time.process_time()
            report = make_ingestor(client).ingest_documents(docs, recreate=True)  # fresh collection each time
            rates["ingest"].append(_rates(report.encoded, wall, cpu))
            assert report.encoded == len(texts) == client.count("bench").count
            print(f"run {repeat + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f} chunks/s ({v[-1][1]:.1f} per CPU-s)"
                                                    for k, v in rates.items()), flush=True)
        client.close()
    best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in rates.items()}
    print(f"path={args.path} model={args.model} docs={len(docs)} chunks={len(texts)} chunk_tokens={args.chunk_tokens} "
          f"batch_size={args.batch_size} group_chunks={args.group_chunks} repeats={args.repeats}")
    print(f"encode-only: {best['encode'][0]:.1f} chunks/s | ingest end-to-end: {best['ingest'][0]:.1f} chunks/s | "
          f"ratio ingest/encode = {best['ingest'][0] / best['encode'][0]:.3f} (target >= 0.9)")
    print(f"per CPU-second: encode-only {best['encode'][1]:.1f} | ingest {best['ingest'][1]:.1f} | "
          f"ratio = {best['ingest'][1] / best['encode'][1]:.3f}")


def _ray_encoder(args):
    """One encoder actor with every CPU of a local Ray instance, as the Ray path's backend."""
    import os

    import ray

    from llm2vec_plugins.integrations.qdrant.distributed import EncoderActor, RayEncoders

    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    actor = ray.remote(num_cpus=cpus)(EncoderActor).remote(args.model, None, args.batch_size, cpus, "cpu", None)
    backend = RayEncoders([actor])
    backend.encode(["warm up the kernels"] * 4)
    return backend, backend.encode


def _rates(chunks: int, wall_start: float, cpu_start: float) -> tuple[float, float]:
    return chunks / (time.perf_counter() - wall_start), chunks / (time.process_time() - cpu_start)


if __name__ == "__main__":
    main()
