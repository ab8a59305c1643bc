"""`llm2vec index` / `llm2vec search`: ingest files into a Qdrant collection and query it.

Both only parse arguments; the work is in `llm2vec_plugins.integrations.qdrant`.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import typer

from llm2vec_plugins.cli.common import DtypeName, check_model_or_fail, fail
from llm2vec_plugins.integrations.qdrant.store import DEFAULT_QDRANT_PATH
from llm2vec_plugins.loading import DEFAULT_ENCODER
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION

# Options shared by both commands: they must name the same collection in the same store.
_MODEL = typer.Option(DEFAULT_ENCODER, "--model", help="Encoder: alias, local folder, .gguf file or hub id.")
_PEFT = typer.Option(None, "--peft-model", help="LoRA adapter applied on top of --model.")
_COLLECTION = typer.Option(..., "--collection", "-c", help="Qdrant collection name.")
_PATH = typer.Option(None, "--qdrant-path", help="Folder of the embedded Qdrant store (default ./qdrant_data).")
_URL = typer.Option(None, "--qdrant-url", help="Qdrant server URL (instead of the embedded store).")
_API_KEY = typer.Option(None, "--api-key", envvar="QDRANT_API_KEY", help="Qdrant server API key.")
_DTYPE = typer.Option("float32", help="Weights dtype (bfloat16 on GPUs).")
_DEVICE = typer.Option(None, help="Torch device, e.g. cuda:0 (default: CUDA when available, else CPU).")


@contextmanager
def _collection_mismatch_exits_2() -> Iterator[None]:
    """A collection of another size, distance or layout is a usage error: say so and exit 2, no traceback."""
    from llm2vec_plugins.integrations.qdrant import CollectionMismatchError

    try:
        yield
    except CollectionMismatchError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


def _client(qdrant_path: Path | None, qdrant_url: str | None, api_key: str | None):
    from llm2vec_plugins.integrations.qdrant import connect

    try:
        return connect(path=qdrant_path, url=qdrant_url, api_key=api_key)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    except RuntimeError as err:  # embedded store locked by another process
        typer.echo(f"error: cannot open the Qdrant store: {err}", err=True)
        raise typer.Exit(2) from err


def index(
    paths: list[Path] = typer.Argument(..., help="Files (.txt .md .jsonl .csv .parquet) and/or directories."),
    collection: str = _COLLECTION,
    model: str = _MODEL,
    peft_model: str | None = _PEFT,
    qdrant_path: Path | None = _PATH,
    qdrant_url: str | None = _URL,
    api_key: str | None = _API_KEY,
    payload_layout: Literal["llm2vec", "langchain", "llamaindex"] = typer.Option(
        "llm2vec", help="Payload format, so that LangChain or LlamaIndex can query the collection."),
    text_field: str = typer.Option("text", help="Text field / column of .jsonl, .csv and .parquet records."),
    id_field: str | None = typer.Option(None, help="Record field holding a stable id (default: record number)."),
    chunk_tokens: int = typer.Option(256, min=1, help="Chunk size in tokens (at most the encoder's doc_max_length)."),
    chunk_overlap: int = typer.Option(32, min=0, help="Tokens shared by consecutive chunks."),
    batch_size: int = typer.Option(32, min=1, help="Encoder batch size."),
    recreate: bool = typer.Option(False, help="Delete and rebuild the collection (re-encodes everything; "
                                              "needed to switch a collection to another encoder)."),
    prune: bool = typer.Option(False, help="Delete the points of documents no longer in PATHS (deleted files, "
                                           "removed records); not done if any input could not be read."),
    allow_skipped: bool = typer.Option(False, help="Exit 0 even if some files or records were skipped."),
    dtype: DtypeName = _DTYPE,
    device: str | None = _DEVICE,
    ray: bool = typer.Option(False, "--ray", help="Run on Ray: Ray Data over files, one encoder actor per worker."),
    ray_address: str | None = typer.Option(None, help="Ray cluster to join (e.g. 'auto', 'ray://head:10001'); "
                                                       "default: a local Ray instance."),
    ray_encoders: int = typer.Option(2, min=1, help="Encoder actors (each loads one model)."),
    ray_gpus_per_encoder: float = typer.Option(0, min=0, help="GPUs per encoder actor (1 = one model per GPU)."),
) -> None:
    """Chunk, encode and store documents in a Qdrant collection; rerunning only adds what changed.

    Point ids are deterministic, so the command is idempotent and can be rerun after an interruption.
    Exits 1 if a file or record was skipped (unless --allow-skipped), 2 on a collection mismatch.
    """
    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.integrations.qdrant import QdrantIngestor

    if chunk_overlap >= chunk_tokens:
        raise typer.BadParameter(f"--chunk-overlap ({chunk_overlap}) must be smaller than --chunk-tokens ({chunk_tokens})")
    check_model_or_fail(model, peft_model)
    with _collection_mismatch_exits_2():
        if ray:
            report = _index_with_ray(paths, collection, model, peft_model, qdrant_path, qdrant_url, api_key,
                                     payload_layout, text_field, id_field, chunk_tokens, chunk_overlap, batch_size,
                                     recreate, prune, dtype, device, ray_address, ray_encoders, ray_gpus_per_encoder)
        else:
            client = _client(qdrant_path, qdrant_url, api_key)
            try:
                encoder = LLM2Vec.from_pretrained(model, peft_model, dtype=dtype, device=device)
                try:
                    ingestor = QdrantIngestor(encoder, client, collection, layout=payload_layout,
                                              chunk_tokens=chunk_tokens, overlap=chunk_overlap,
                                              batch_size=batch_size, show_progress=True)
                except ValueError as err:
                    raise typer.BadParameter(str(err)) from err
                report = ingestor.ingest(paths, text_field=text_field, id_field=id_field, recreate=recreate,
                                         prune=prune)
            finally:
                client.close()
    for skipped in report.skipped:
        typer.echo(f"skipped {skipped.where}: {skipped.reason}", err=True)
    typer.echo(
        f"{report.documents} documents, {report.chunks} chunks: {report.encoded} encoded and stored, "
        f"{report.unchanged} unchanged, {report.stale_deleted} stale removed, {len(report.skipped)} skipped "
        f"({report.seconds:.1f} s, {report.chunks_per_second:.1f} chunks/s) -> collection {collection!r}"
    )
    if prune and report.pruned is None:
        typer.echo("not pruned: some input could not be read, and its stored points are kept", err=True)
    elif prune:
        typer.echo(f"pruned {report.pruned} points of documents no longer in the input")
    if report.skipped and not allow_skipped:
        raise typer.Exit(1)


def _index_with_ray(paths, collection, model, peft_model, qdrant_path, qdrant_url, api_key, layout, text_field,
                    id_field, chunk_tokens, overlap, batch_size, recreate, prune, dtype, device, address, encoders,
                    gpus):
    from llm2vec_plugins.integrations.qdrant.distributed import ingest_with_ray

    try:
        import ray as ray_lib
    except ImportError as err:
        raise typer.BadParameter("--ray needs Ray: pip install 'llm2vec-plugins[ray]'") from err
    if not ray_lib.is_initialized():
        ray_lib.init(address=address, include_dashboard=False)
    return ingest_with_ray(paths, collection, model=model, peft_model=peft_model, qdrant_url=qdrant_url,
                           qdrant_path=qdrant_path, api_key=api_key, layout=layout, chunk_tokens=chunk_tokens,
                           overlap=overlap, batch_size=batch_size, num_encoders=encoders,
                           gpus_per_encoder=gpus, device=device, dtype=dtype, text_field=text_field,
                           id_field=id_field, recreate=recreate, prune=prune, show_progress=True)


def search(
    query: str = typer.Argument(..., help="The search query."),
    collection: str = _COLLECTION,
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="Number of hits."),
    model: str = _MODEL,
    peft_model: str | None = _PEFT,
    qdrant_path: Path | None = _PATH,
    qdrant_url: str | None = _URL,
    api_key: str | None = _API_KEY,
    instruction: str = typer.Option(DEFAULT_QUERY_INSTRUCTION, help="Query instruction ('' for none)."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as a JSON list."),
    dtype: DtypeName = _DTYPE,
    device: str | None = _DEVICE,
) -> None:
    """Encode QUERY with the query instruction and print the k best chunks of a collection."""
    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.integrations.qdrant import search as search_collection

    if not query.strip():
        raise typer.BadParameter("the query is empty; pass the text to search for")
    if qdrant_url is None:
        store = qdrant_path or Path(DEFAULT_QDRANT_PATH)
        if not store.is_dir():  # never create an empty store just to find nothing in it
            fail(f"no Qdrant store at {store}; index documents into it first with `llm2vec index`")
    check_model_or_fail(model, peft_model)
    client = _client(qdrant_path, qdrant_url, api_key)
    try:
        if not client.collection_exists(collection):
            typer.echo(f"error: collection {collection!r} does not exist; create it with `llm2vec index`", err=True)
            raise typer.Exit(2)
        encoder = LLM2Vec.from_pretrained(model, peft_model, dtype=dtype, device=device)
        with _collection_mismatch_exits_2():
            hits = search_collection(encoder, client, collection, query, k, instruction=instruction or None)
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.metadata.get('source_id', '?')} [chunk {hit.metadata.get('chunk_index', '?')}]"
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        typer.echo(f"{rank:>3}. {hit.score:.4f}  {where}\n     {snippet}")


def register(app: typer.Typer) -> None:
    app.command()(index)
    app.command()(search)
