"""Qdrant connection, collection checks and deterministic point ids (shared by the local and Ray ingestion)."""
from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

from llm2vec_plugins.integrations.qdrant.layouts import PayloadLayout, detect_layout

# Fixed namespace: the same chunk gets the same point id on every machine and every run.
POINT_NAMESPACE = uuid.UUID("5b0b6f0e-4c1e-5f57-9a0c-6c6c6d32766e")
DEFAULT_QDRANT_PATH = "./qdrant_data"


class CollectionMismatchError(ValueError):
    """The target collection exists with a vector size, distance or payload layout we would not match."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def point_id(source_id: str, chunk_index: int, chunk_hash: str) -> str:
    """uuid5 of (source id, chunk index, content hash): re-ingesting an unchanged chunk hits the same point.

    Example:
        >>> point_id("/data/a.txt", 0, content_hash("hello"))
        '...'  # always the same string for these inputs
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source_id}\x1f{chunk_index}\x1f{chunk_hash}"))


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
                      create: bool = True) -> bool:
    """Check that `collection` fits (vector size, distance, layout) or create it; True if it was created.

    Raises CollectionMismatchError before anything is written if the collection has another vector size
    or distance, named vectors, or points in another payload layout.
    """
    from qdrant_client import models

    distance_enum = models.Distance(distance.capitalize() if distance.lower() != "dot" else "Dot")
    if client.collection_exists(collection):
        vectors = client.get_collection(collection).config.params.vectors
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
        sample, _ = client.scroll(collection, limit=1, with_payload=True, with_vectors=False)
        if sample:
            found = detect_layout(sample[0].payload or {})
            if found is None or found.name != layout.name:
                raise CollectionMismatchError(
                    f"collection {collection!r} holds points in the "
                    f"{found.name if found else 'unknown'!r} payload layout, not {layout.name!r}; mixing "
                    "layouts would break idempotence. Pass the same --payload-layout or use another collection.")
        speed_up_local_writes(client, collection)
        return False
    if not create:
        raise CollectionMismatchError(f"collection {collection!r} does not exist")
    client.create_collection(collection, vectors_config=models.VectorParams(size=dim, distance=distance_enum))
    if not is_local(client):
        # On a server, finding a document's points by source id must not scan the collection.
        client.create_payload_index(collection, layout.source_key, models.PayloadSchemaType.KEYWORD)
    speed_up_local_writes(client, collection)
    return True


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


def existing_points(client, collection: str, layout: PayloadLayout, source_ids: list[str]) -> dict[str, set[str]]:
    """source id -> ids of the points stored for it (one filtered scroll for a batch of documents)."""
    from qdrant_client import models

    found: dict[str, set[str]] = {s: set() for s in source_ids}
    if not source_ids:
        return found
    flt = models.Filter(must=[models.FieldCondition(key=layout.source_key,
                                                    match=models.MatchAny(any=list(source_ids)))])
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


def points_from_other_sources(client, collection: str, layout: PayloadLayout, keep: set[str]) -> list[str]:
    """Ids of the points whose source id is not in `keep` (one scroll over the collection's source ids)."""
    stale, offset = [], None
    while True:
        points, offset = client.scroll(collection, limit=1024, offset=offset,
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

