"""The Qdrant ingestion on Ray (`pip install 'llm2vec-plugins[ray,qdrant]'`): Ray Data reads the files on
the workers, encoder actors (one per GPU with `gpus_per_encoder=1`) encode the chunks, and everything else
is the local pipeline itself (`QdrantIngestor`): the same plan (which chunks to encode, which are stale), the
same writer, the same duplicate, encoder-identity, prune and crash-safety rules on both paths.

The driver chunks the documents with the actors' input tokenizer, tokenizing each document once; the actors
encode those token ids as they are. The driver plans each group against the store,
sends the chunks to encode to the actors (several groups in flight, so every actor stays busy) and writes
the vectors they return, to a Qdrant server or to an embedded store.
"""
from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from llm2vec_plugins.integrations.qdrant.documents import Document, ReadReport, Skipped, iter_files, read_documents
from llm2vec_plugins.integrations.qdrant.ingest import IngestGroup, IngestReport, QdrantIngestor
from llm2vec_plugins.integrations.qdrant.store import connect


def _read_file(row: dict[str, Any], text_field: str, id_field: str | None) -> list[dict[str, Any]]:
    """Ray flat_map: one file -> its documents, plus one row per skipped file / record (same columns)."""
    report = ReadReport()
    rows = [{"source_id": d.source_id, "source": d.source, "text": d.text, "metadata": json.dumps(d.metadata),
             "skipped": ""}
            for d in read_documents([row["path"]], report, text_field=text_field, id_field=id_field)]
    rows += [{"source_id": "", "source": s.where, "text": "", "metadata": "{}", "skipped": s.reason}
             for s in report.skipped]
    return rows


def read_documents_with_ray(paths: Sequence[str | os.PathLike], report: ReadReport, *, text_field: str = "text",
                            id_field: str | None = None) -> Iterator[Document]:
    """`read_documents` with the files read by Ray Data on the workers (paths on a shared file system);
    what could not be read lands in `report` exactly as in the local reader."""
    import ray

    files = [str(p.resolve()) for p in iter_files(paths, report)]
    if not files:
        return
    dataset = ray.data.from_items([{"path": f} for f in files]).flat_map(
        _read_file, fn_kwargs={"text_field": text_field, "id_field": id_field},
        num_cpus=0)  # light I/O: must never wait for the encoders' CPUs
    for row in dataset.iter_rows():
        if row["skipped"]:
            report.skipped.append(Skipped(str(row["source"]), str(row["skipped"])))
        else:
            yield Document(str(row["source_id"]), str(row["text"]), str(row["source"]), json.loads(row["metadata"]))


class EncoderActor:
    """Ray actor holding one model; encodes lists of texts (on its own GPU when Ray reserved one)."""

    def __init__(self, model: str, peft_model: str | None, batch_size: int, threads: int | None,
                 device: str | None, dtype: str | None, gpus: float = 0) -> None:
        import torch

        from llm2vec_plugins import LLM2Vec

        if threads:
            torch.set_num_threads(threads)  # one actor per core: do not oversubscribe
        # Ray hides every GPU but the reserved ones, so "cuda" is this actor's own GPU.
        self.model = LLM2Vec.from_pretrained(model, peft_model, device=device or ("cuda" if gpus else "cpu"),
                                             dtype=dtype)
        self.batch_size = batch_size

    def describe(self) -> dict[str, Any]:
        return {"input_tokenizer": self.model.input_tokenizer, "embedding_dim": self.model.embedding_dim,
                "identity": self.model.identity}

    def encode(self, inputs: list) -> np.ndarray:
        """Rows for texts, or for the `TokenizedText` inputs the driver's chunker made."""
        return self.model.encode(inputs, batch_size=self.batch_size, normalize_embeddings=True)


class RayEncoders:
    """The encoder backend of a Ray ingest: groups are dealt round-robin to the actors, with up to
    `in_flight` groups submitted ahead, and come back in their order."""

    def __init__(self, actors: list, in_flight: int | None = None) -> None:
        import ray

        if not actors:
            raise ValueError("RayEncoders needs at least one encoder actor")
        self.actors = actors
        self.in_flight = in_flight or 2 * len(actors)
        info = ray.get(actors[0].describe.remote())
        self.input_tokenizer = info["input_tokenizer"]
        self.embedding_dim = info["embedding_dim"]
        self.identity = info["identity"]

    def encode(self, inputs: list) -> np.ndarray:
        import ray

        return ray.get(self.actors[0].encode.remote(inputs))

    def encode_groups(self, groups: Iterable[IngestGroup]) -> Iterator[IngestGroup]:
        import ray

        pending: deque = deque()
        for turn, group in enumerate(groups):
            actor = self.actors[turn % len(self.actors)]
            pending.append((group, actor.encode.remote([r.tokens for r in group.todo]) if group.todo else None))
            if len(pending) >= self.in_flight:
                yield self._finish(*pending.popleft(), ray)
        while pending:
            yield self._finish(*pending.popleft(), ray)

    @staticmethod
    def _finish(group: IngestGroup, ref, ray) -> IngestGroup:
        if ref is not None:
            group.vectors = ray.get(ref)
        return group


def ingest_with_ray(
    paths: Sequence[str | os.PathLike],
    collection: str,
    *,
    model: str,
    peft_model: str | None = None,
    qdrant_url: str | None = None,
    qdrant_path: str | os.PathLike | None = None,
    api_key: str | None = None,
    layout: str = "llm2vec",
    chunk_tokens: int = 256,
    overlap: int = 32,
    batch_size: int = 32,
    group_chunks: int = 128,
    num_encoders: int = 2,
    cpus_per_encoder: float = 1,
    gpus_per_encoder: float = 0,
    device: str | None = None,
    dtype: str | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    recreate: bool = False,
    prune: bool = False,
    show_progress: bool = False,
) -> IngestReport:
    """Ingest files into Qdrant with Ray: the same result as `QdrantIngestor.ingest`, with the files read on
    the workers and `num_encoders` actors encoding (one per GPU with `gpus_per_encoder=1`). Connects to the
    Ray cluster of `ray.init()` (call it first for a remote cluster, e.g. `ray.init("ray://head:10001")`);
    paths must be readable from the workers (shared file system).

    Example:
        >>> import ray; ray.init(address="auto")
        >>> report = ingest_with_ray(["/shared/docs"], "docs", model="smollm2-135m-llm2vec",
        ...                          qdrant_url="http://qdrant:6333", num_encoders=8, gpus_per_encoder=1)
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError("distributed ingestion needs Ray: pip install 'llm2vec-plugins[ray]'") from err
    if not ray.is_initialized():
        ray.init()
    threads = max(1, int(cpus_per_encoder)) if not gpus_per_encoder else None
    options = {"num_cpus": cpus_per_encoder} | ({"num_gpus": gpus_per_encoder} if gpus_per_encoder else {})
    actor_class = ray.remote(**options)(EncoderActor)
    actors = [actor_class.remote(model, peft_model, batch_size, threads, device, dtype, gpus_per_encoder)
              for _ in range(num_encoders)]
    client = connect(path=qdrant_path, url=qdrant_url, api_key=api_key)
    try:
        ingestor = QdrantIngestor(RayEncoders(actors), client, collection, layout=layout, chunk_tokens=chunk_tokens,
                                  overlap=overlap, batch_size=batch_size, group_chunks=group_chunks,
                                  show_progress=show_progress)
        return ingestor.ingest(paths, text_field=text_field, id_field=id_field, recreate=recreate, prune=prune,
                               reader=read_documents_with_ray)
    finally:
        client.close()
        for actor in actors:
            ray.kill(actor)
