"""The same Qdrant ingestion on Ray (`pip install 'llm2vec-plugins[ray,qdrant]'`): Ray Data over files,
one encoder actor per worker (or GPU), the same ids, payloads and stale-chunk cleanup as `QdrantIngestor`.

Where points are written depends on the store:
- a Qdrant server (`qdrant_url`): each encoder actor skips chunks the server already has (retrieve by id),
  encodes the rest and upserts them itself, so nothing but ids flows back to the driver;
- embedded Qdrant (`qdrant_path`, one process only): the driver reads the stored ids once, actors skip
  those, and the driver writes the vectors the actors send back.
Stale chunks (of documents that changed) are deleted by the driver at the end, after all new chunks are
stored, so a killed run can simply be started again.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from llm2vec_plugins.documents import Document, ReadReport, Skipped, iter_files, read_documents
from llm2vec_plugins.integrations.qdrant.ingest import IngestReport, chunk_records
from llm2vec_plugins.integrations.qdrant.layouts import ChunkRecord, get_layout
from llm2vec_plugins.integrations.qdrant.store import connect, ensure_collection, existing_points


def _read_file(row: dict[str, Any], text_field: str, id_field: str | None) -> list[dict[str, Any]]:
    """Ray flat_map: one file -> its documents, plus one row per skipped file / record (same columns)."""
    report = ReadReport()
    rows = [{"source_id": d.source_id, "source": d.source, "text": d.text, "metadata": json.dumps(d.metadata),
             "skipped": ""}
            for d in read_documents([row["path"]], report, text_field=text_field, id_field=id_field)]
    rows += [{"source_id": "", "source": s.where, "text": "", "metadata": "{}", "skipped": s.reason}
             for s in report.skipped]
    return rows


class EncoderActor:
    """Ray actor: loads one model, then turns batches of documents into chunk rows (and writes them to a
    Qdrant server if it has one)."""

    def __init__(self, model: str, peft_model: str | None, layout: str, chunk_tokens: int, overlap: int,
                 batch_size: int, threads: int | None, device: str | None, dtype: str | None,
                 qdrant: dict[str, Any] | None, collection: str, stored_ids=None, gpus: float = 0) -> None:
        import torch

        from llm2vec_plugins import LLM2Vec
        from llm2vec_plugins.chunking import TokenChunker

        if threads:
            torch.set_num_threads(threads)  # one actor per core: do not oversubscribe
        # Ray hides every GPU but the reserved ones, so "cuda" is this actor's own GPU.
        self.model = LLM2Vec.from_pretrained(model, peft_model, device=device or ("cuda" if gpus else "cpu"),
                                             dtype=dtype)
        self.chunker = TokenChunker(self.model.tokenizer, chunk_tokens, overlap)
        self.layout = get_layout(layout)
        self.batch_size = batch_size
        self.collection = collection
        self.client = connect(**qdrant) if qdrant else None
        if stored_ids is not None and not isinstance(stored_ids, frozenset):
            import ray

            stored_ids = ray.get(stored_ids)  # an ObjectRef: one shared copy of the ids, not one per actor
        self.stored_ids = stored_ids or frozenset()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"point_id": [], "source_id": [], "encoded": [], "skipped": [], "where": [],
                                "vector": [], "payload": []}
        records: list[ChunkRecord] = []
        for i in range(len(batch["source_id"])):
            if batch["skipped"][i]:
                self._row(out, "", "", False, str(batch["skipped"][i]), str(batch["source"][i]))
                continue
            document = Document(str(batch["source_id"][i]), str(batch["text"][i]), str(batch["source"][i]),
                                json.loads(batch["metadata"][i]))
            records.extend(chunk_records(document, self.chunker))
        stored = self._stored([r.point_id for r in records])
        todo = [r for r in records if r.point_id not in stored]
        vectors = self.model.encode([r.text for r in todo], batch_size=self.batch_size, normalize_embeddings=True)
        if self.client is not None and todo:
            from qdrant_client import models

            self.client.upsert(self.collection, wait=True, points=[
                models.PointStruct(id=r.point_id, vector=v.tolist(), payload=self.layout.payload(r))
                for r, v in zip(todo, vectors)])
        by_id = {r.point_id: v for r, v in zip(todo, vectors)}
        for record in records:
            vector = by_id.get(record.point_id)
            ship = vector is not None and self.client is None  # the driver writes for embedded stores
            self._row(out, record.point_id, record.source_id, vector is not None, "", "",
                      vector.tolist() if ship else [], json.dumps(self.layout.payload(record)) if ship else "")
        return out

    @staticmethod
    def _row(out, point_id, source_id, encoded, skipped, where, vector=(), payload="") -> None:
        for key, value in zip(out, (point_id, source_id, encoded, skipped, where, list(vector), payload)):
            out[key].append(value)

    def _stored(self, ids: list[str]) -> set[str]:
        if self.client is None:
            return {i for i in ids if i in self.stored_ids}
        found = self.client.retrieve(self.collection, ids=ids, with_payload=False, with_vectors=False) if ids else []
        return {str(p.id) for p in found}


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
    docs_per_task: int = 64,
    num_encoders: int = 2,
    cpus_per_encoder: float = 1,
    gpus_per_encoder: float = 0,
    device: str | None = None,
    dtype: str | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    recreate: bool = False,
) -> IngestReport:
    """Ingest files into Qdrant with Ray: `num_encoders` actors each hold one model (one per GPU with
    `gpus_per_encoder=1`). Connects to the Ray cluster of `ray.init()` (call it first for a remote cluster,
    e.g. `ray.init("ray://head:10001")`); paths must be readable from the workers (shared file system).

    Example:
        >>> import ray; ray.init(address="auto")
        >>> report = ingest_with_ray(["/shared/docs"], "docs", model="smollm2-135m-llm2vec",
        ...                          qdrant_url="http://qdrant:6333", num_encoders=8, gpus_per_encoder=1)
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError("distributed ingestion needs Ray: pip install 'llm2vec-plugins[ray]'") from err
    import time

    from qdrant_client import models

    started = time.perf_counter()
    layout_obj = get_layout(layout)
    qdrant = {"url": qdrant_url, "api_key": api_key} if qdrant_url else None
    client = connect(path=qdrant_path, url=qdrant_url, api_key=api_key)
    try:
        # Fail fast (and before writing) on a mismatched collection; the dimension needs the model config only.
        from llm2vec_plugins.loading import embedding_dim

        dim = embedding_dim(model)
        if recreate and client.collection_exists(collection):
            client.delete_collection(collection)
        ensure_collection(client, collection, dim, layout_obj)
        stored_ids = None
        if qdrant is None:
            stored_ids = frozenset(str(p) for p in _all_ids(client, collection))

        read_report = ReadReport()
        files = [str(p.resolve()) for p in iter_files(paths, read_report)]
        report = IngestReport(skipped=list(read_report.skipped))
        if not ray.is_initialized():
            ray.init()
        dataset = ray.data.from_items([{"path": f} for f in files]) if files else None
        wanted: dict[str, set[str]] = {}
        if dataset is not None:
            documents = dataset.flat_map(_read_file, fn_kwargs={"text_field": text_field, "id_field": id_field},
                                         num_cpus=0)  # light I/O: must never wait for encoder CPUs
            threads = max(1, int(cpus_per_encoder)) if not gpus_per_encoder else None
            resources = {"num_cpus": cpus_per_encoder} | ({"num_gpus": gpus_per_encoder} if gpus_per_encoder else {})
            chunks = documents.map_batches(
                EncoderActor, batch_size=docs_per_task, concurrency=num_encoders, **resources,
                fn_constructor_kwargs=dict(model=model, peft_model=peft_model, layout=layout_obj.name,
                                           chunk_tokens=chunk_tokens, overlap=overlap, batch_size=batch_size,
                                           threads=threads, device=device, dtype=dtype, qdrant=qdrant,
                                           gpus=gpus_per_encoder,
                                           collection=collection,
                                           stored_ids=ray.put(stored_ids) if stored_ids is not None else None),
            )
            for batch in chunks.iter_batches(batch_size=256, batch_format="numpy"):
                _consume(batch, client, collection, report, wanted)
        # Every new chunk is stored: now the older versions of changed documents may go.
        report.stale_deleted = _delete_stale(client, collection, layout_obj, wanted, models)
        report.documents = len(wanted)
        report.chunks = sum(len(ids) for ids in wanted.values())
        report.unchanged = report.chunks - report.encoded
        report.seconds = time.perf_counter() - started
        return report
    finally:
        client.close()


def _consume(batch, client, collection: str, report: IngestReport, wanted: dict[str, set[str]]) -> None:
    from qdrant_client import models

    points = []
    for i in range(len(batch["point_id"])):
        if batch["skipped"][i]:
            report.skipped.append(Skipped(str(batch["where"][i]), str(batch["skipped"][i])))
            continue
        wanted.setdefault(str(batch["source_id"][i]), set()).add(str(batch["point_id"][i]))
        if batch["encoded"][i]:
            report.encoded += 1
            if batch["payload"][i]:  # shipped back: this driver writes it (embedded store)
                points.append(models.PointStruct(id=str(batch["point_id"][i]), payload=json.loads(batch["payload"][i]),
                                                 vector=[float(x) for x in batch["vector"][i]]))
    if points:
        client.upsert(collection, points=points, wait=True)


def _all_ids(client, collection: str) -> list:
    ids, offset = [], None
    while True:
        points, offset = client.scroll(collection, limit=4096, offset=offset, with_payload=False)
        ids.extend(p.id for p in points)
        if offset is None:
            return ids


def _delete_stale(client, collection: str, layout, wanted: dict[str, set[str]], models) -> int:
    sources = list(wanted)
    deleted = 0
    for start in range(0, len(sources), 256):
        group = sources[start:start + 256]
        stale = [pid for source, stored in existing_points(client, collection, layout, group).items()
                 for pid in stored - wanted[source]]
        if stale:
            client.delete(collection, points_selector=models.PointIdsList(points=stale), wait=True)
            deleted += len(stale)
    return deleted
