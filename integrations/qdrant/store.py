"""Qdrant connection, collection checks and deterministic point ids (shared by the local and Ray ingestion)."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm2vec_plugins.integrations.qdrant.layouts import PayloadLayout, detect_layout

# Fixed namespace: the same chunk gets the same point id on every machine and every run.
POINT_NAMESPACE = uuid.UUID("5b0b6f0e-4c1e-5f57-9a0c-6c6c6d32766e")
DEFAULT_QDRANT_PATH = "./qdrant_data"


METADATA_KEY = "llm2vec"  # collection metadata: the encoder identity and payload layout of our points
# Embedded with every identity: a model whose weights changed under the same name gives another vector.
PROBE_TEXT = "llm2vec encoder identity probe: the quick brown fox jumps over the lazy dog."
PROBE_MIN_COSINE = 0.999  # tolerance for kernels and CPUs that sum in another order


class CollectionMismatchError(ValueError):
    """The target collection exists with a vector size, distance, payload layout or encoder we would not match."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What made a collection's vectors: the encoder's settings (`LLM2Vec.identity`), their hash `key`
    (part of every point id and payload), and the vector of a fixed probe text.

    Example:
        >>> identity = EncoderIdentity.of(model.identity, model.encode([PROBE_TEXT])[0])
        >>> identity.key
        '3f2a...'
    """

    settings: dict
    probe: list[float] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, settings: dict, probe_vector) -> EncoderIdentity:
        vector = np.asarray(probe_vector, dtype=np.float64)
        return cls(dict(settings), (vector / max(np.linalg.norm(vector), 1e-12)).round(6).tolist())

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        s = self.settings
        model = s.get("model") + (f" + adapter {s['peft_model']}" if s.get("peft_model") else "")
        details = [f"{k}={s[k]}" for k in sorted(s) if k not in ("model", "peft_model", "template")]
        return f"{model} ({', '.join(details)})"

    def as_metadata(self, layout: PayloadLayout) -> dict:
        return {METADATA_KEY: {"encoder_key": self.key, "encoder": self.settings, "probe": self.probe,
                               "layout": layout.name}}


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def point_id(source_id: str, chunk_index: int, chunk_hash: str, encoder: str = "") -> str:
    """uuid5 of (source id, chunk index, content hash, encoder key): re-ingesting an unchanged chunk with the
    same encoder hits the same point; another encoder never does.

    Example:
        >>> point_id("/data/a.txt", 0, content_hash("hello"), identity.key)
        '...'  # always the same string for these inputs
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source_id}\x1f{chunk_index}\x1f{chunk_hash}\x1f{encoder}"))


def connect(path: str | os.PathLike | None = None, url: str | None = None, api_key: str | None = None,
            **kwargs: Any):
    """A QdrantClient: a server at `url` if given, else embedded (local mode) storage in folder `path`.

    Embedded storage holds a file lock: only one client per folder at a time, even in one process.

    Example:
        >>> client = connect(path="./qdrant_data")              # no server needed
        >>> client = connect(url="http://localhost:6333", api_key=None)
    """
    try:
        from qdrant_client import QdrantClient
    except ImportError as err:
        raise ImportError("Qdrant support needs qdrant-client: pip install 'llm2vec-plugins[qdrant]'") from err
    if url is not None:
        if path is not None:
            raise ValueError("give either a Qdrant server url or an embedded storage path, not both")
        return QdrantClient(url=url, api_key=api_key, **kwargs)
    if api_key is not None:
        raise ValueError("an api key only makes sense with a Qdrant server url")
    # The ingestor serializes client calls with its own lock, so the client may be used from its upload thread.
    return QdrantClient(path=os.fspath(path or DEFAULT_QDRANT_PATH), force_disable_check_same_thread=True,
                        **kwargs)


def is_local(client) -> bool:
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


def ensure_collection(client, collection: str, dim: int, layout: PayloadLayout, distance: str = "Cosine",
                      create: bool = True, identity: EncoderIdentity | None = None) -> bool:
    """Check that `collection` fits (vector size, distance, layout, encoder) or create it; True if created.

    Raises CollectionMismatchError before anything is written if the collection has another vector size
    or distance, named vectors, our points in another payload layout, or vectors of another encoder
    (`identity`, recorded in the collection's metadata on first use). Points that other tools wrote
    (a LangChain `add_texts`, a hand upsert) are allowed beside ours.
    """
    from qdrant_client import models

    distance_enum = models.Distance(distance.capitalize() if distance.lower() != "dot" else "Dot")
    if client.collection_exists(collection):
        info = client.get_collection(collection)
        vectors = info.config.params.vectors
        if isinstance(vectors, dict):
            if set(vectors) != {""}:
                raise CollectionMismatchError(
                    f"collection {collection!r} uses named vectors {sorted(vectors)}; llm2vec writes Qdrant's "
                    "unnamed vector. Use another --collection (or delete this one).")
            vectors = vectors[""]
        problems = []
        if vectors.size != dim:
            problems.append(f"vector size {vectors.size} (this encoder gives {dim})")
        if vectors.distance != distance_enum:
            problems.append(f"distance {vectors.distance.value} (expected {distance_enum.value})")
        if problems:
            raise CollectionMismatchError(
                f"collection {collection!r} was created with {' and '.join(problems)}; nothing was written. "
                "Use another --collection, the model it was built with, or --recreate to rebuild it.")
        stored = (getattr(info.config, "metadata", None) or {}).get(METADATA_KEY)
        if stored is None:
            _refuse_unmarked_points_of_ours(client, collection)
            if identity is not None:
                client.update_collection(collection, metadata=identity.as_metadata(layout))
        else:
            _check_stored(collection, stored, layout, identity)
        speed_up_local_writes(client, collection)
        return False
    if not create:
        raise CollectionMismatchError(f"collection {collection!r} does not exist")
    client.create_collection(collection, vectors_config=models.VectorParams(size=dim, distance=distance_enum),
                             metadata=identity.as_metadata(layout) if identity is not None else None)
    if not is_local(client):
        # On a server, finding a document's points by source id must not scan the collection.
        client.create_payload_index(collection, layout.source_key, models.PayloadSchemaType.KEYWORD)
        client.create_payload_index(collection, layout.marker_key, models.PayloadSchemaType.KEYWORD)
    speed_up_local_writes(client, collection)
    return True


def _check_stored(collection: str, stored: dict, layout: PayloadLayout, identity: EncoderIdentity | None) -> None:
    if stored.get("layout") != layout.name:
        raise CollectionMismatchError(
            f"collection {collection!r} holds llm2vec points in the {stored.get('layout')!r} payload layout, not "
            f"{layout.name!r}; mixing layouts would break idempotence. Pass the same --payload-layout or use "
            "another collection.")
    if identity is None:
        return
    theirs = EncoderIdentity(stored.get("encoder") or {}, stored.get("probe") or [])
    if stored.get("encoder_key") != identity.key:
        raise CollectionMismatchError(
            f"collection {collection!r} holds vectors of another encoder: {theirs.describe()}; this run's "
            f"encoder is {identity.describe()}. Nothing was written: their vectors would not be comparable. "
            "Use the collection's encoder, another --collection, or --recreate to re-encode everything.")
    if theirs.probe and identity.probe and float(np.dot(theirs.probe, identity.probe)) < PROBE_MIN_COSINE:
        raise CollectionMismatchError(
            f"collection {collection!r} was indexed with {theirs.describe()}, and this encoder has the same "
            "name and settings but gives other vectors (were its weights retrained?). Nothing was written; "
            "use --recreate to re-encode everything.")


def _refuse_unmarked_points_of_ours(client, collection: str) -> None:
    """A collection without our metadata may hold only other tools' points: points that look like ours
    were written by an older llm2vec-plugins, with an encoder nobody recorded."""
    points, _ = client.scroll(collection, limit=256, with_payload=True, with_vectors=False)
    for point in points:
        payload = point.payload or {}
        layout = detect_layout(payload)
        if layout is not None and _get_path(payload, layout.source_key) is not None and (
                "content_hash" in payload or "content_hash" in (payload.get("metadata") or {})):
            raise CollectionMismatchError(
                f"collection {collection!r} holds points of an older llm2vec-plugins that recorded no encoder "
                "identity, so new vectors could silently mix with them; rebuild it with --recreate.")


def speed_up_local_writes(client, collection: str) -> bool:
    """Switch an embedded collection's SQLite file to WAL journaling with synchronous=NORMAL; True if done.

    qdrant-client's local mode commits every point on its own, with an fsync each time (~10 ms per point
    here), which makes the store, not the encoder, the bottleneck. In WAL/NORMAL mode a commit survives a
    killed process (only an OS crash or power cut can lose the last commits, and a rerun of the idempotent
    ingest restores them). This reaches into qdrant-client internals, so anything unexpected is a no-op.
    """
    import sqlite3

    try:
        storage = client._client.collections[collection].storage
        connection = storage.storage if storage is not None else None
        if not isinstance(connection, sqlite3.Connection):
            return False
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return True
    except (AttributeError, KeyError, TypeError, sqlite3.Error):
        return False


def _ours(layout: PayloadLayout, encoder: str, *conditions):
    """A filter for the points this tool wrote with `encoder` (and the extra conditions)."""
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key=layout.marker_key, match=models.MatchValue(value=encoder)),
                               *conditions])


def existing_points(client, collection: str, layout: PayloadLayout, source_ids: list[str],
                    encoder: str = "") -> dict[str, set[str]]:
    """source id -> ids of the points we stored for it (one filtered scroll for a batch of documents)."""
    from qdrant_client import models

    found: dict[str, set[str]] = {s: set() for s in source_ids}
    if not source_ids:
        return found
    flt = _ours(layout, encoder, models.FieldCondition(key=layout.source_key,
                                                       match=models.MatchAny(any=list(source_ids))))
    offset = None
    while True:
        points, offset = client.scroll(collection, scroll_filter=flt, limit=1024, offset=offset,
                                       with_payload=[layout.source_key.split(".")[0]], with_vectors=False)
        for point in points:
            source = _get_path(point.payload or {}, layout.source_key)
            if source in found:
                found[source].add(str(point.id))
        if offset is None:
            return found


def points_from_other_sources(client, collection: str, layout: PayloadLayout, keep: set[str],
                              encoder: str = "") -> list[str]:
    """Ids of the points we wrote whose source id is not in `keep`; other tools' points are never listed."""
    stale, offset = [], None
    while True:
        points, offset = client.scroll(collection, scroll_filter=_ours(layout, encoder), limit=1024, offset=offset,
                                       with_payload=[layout.source_key.split(".")[0]], with_vectors=False)
        stale += [str(p.id) for p in points if _get_path(p.payload or {}, layout.source_key) not in keep]
        if offset is None:
            return stale


def _get_path(payload: dict, dotted: str):
    value: Any = payload
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value

