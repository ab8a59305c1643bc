"""`llm2vec serve`: an OpenAI-compatible embeddings server (POST /v1/embeddings) over the shared encoder."""
from __future__ import annotations

import typer

from llm2vec_plugins.cli.common import DtypeName, PoolingMode, check_model_or_fail, fail, user_errors
from llm2vec_plugins.loading import DEFAULT_ENCODER
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION

_SERVE_EXTRA = "llm2vec serve needs the serve extra: pip install 'llm2vec-plugins[serve]'"


def serve(
    model: str = typer.Option(DEFAULT_ENCODER, help="Encoder: alias, local folder, .gguf file or hub id."),
    peft_model: str | None = typer.Option(None, help="LoRA adapter applied on top of --model."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=0, max=65535),
    served_model_name: str | None = typer.Option(
        None, help="Model id for clients (default: the model's folder name or hub id); NAME:query is the query variant."),
    api_key: str | None = typer.Option(None, envvar="LLM2VEC_API_KEY",
                                       help="Require 'Authorization: Bearer KEY' on /v1 routes."),
    query_instruction: str = typer.Option(DEFAULT_QUERY_INSTRUCTION,
                                          help="Instruction for input_type=query (attended to, not pooled); '' for none."),
    document_instruction: str = typer.Option("", help="Instruction for documents (default: none)."),
    pooling_mode: PoolingMode | None = typer.Option(None, help="Default: the model's llm2vec_config.json, else mean."),
    max_length: int | None = typer.Option(None, min=1, help="Longest input in tokens; longer ones are cut."),
    normalize: bool = typer.Option(True, help="L2-normalize embeddings (as OpenAI's are)."),
    dtype: DtypeName = typer.Option("float32", help="bfloat16 on GPUs and CPUs with AMX."),
    device: str | None = typer.Option(None, help="Torch device (default: CUDA when available, else CPU)."),
    batch_size: int = typer.Option(32, min=1, help="Most texts per forward pass."),
    max_batch_tokens: int = typer.Option(16384, min=1, help="Token budget of one encode call across requests."),
    batch_wait_ms: float = typer.Option(0.0, min=0, help="Wait this long for more requests before a call under the budget."),
    max_queue_tokens: int = typer.Option(262144, min=1, help="Tokens allowed to wait; beyond that: 429."),
    max_items: int = typer.Option(2048, min=1, help="Most inputs per request."),
    max_request_tokens: int = typer.Option(65536, min=1, help="Most tokens per request."),
    max_body_mb: float = typer.Option(16.0, min=0.001, help="Largest request body in MiB; beyond that: 413."),
    max_connections: int | None = typer.Option(None, min=1, help="Concurrent connections; beyond that: 503."),
    graceful_timeout: float = typer.Option(30.0, min=0, help="Seconds to finish in-flight requests on SIGTERM."),
    access_log: bool = typer.Option(False, help="Log every request."),
    ray_replicas: int = typer.Option(0, min=0, help="Serve this many replicas behind Ray Serve (0: one process, no Ray)."),
    ray_gpus_per_replica: float = typer.Option(0, min=0, help="GPUs per Ray replica (1 = one model per GPU)."),
    ray_address: str | None = typer.Option(None, help="Join this Ray cluster (default: start a local one)."),
) -> None:
    """Serve embeddings over HTTP, OpenAI-compatible: POST /v1/embeddings, GET /v1/models, /health, /metrics."""
    try:
        from llm2vec_plugins.serving import EmbeddingService, ServeSettings, create_app, run_server
    except ImportError as err:
        fail(f"{_SERVE_EXTRA} ({err})", err)
    with user_errors("invalid server settings", ValueError):
        settings = ServeSettings(
            model=model, peft_model=peft_model, served_model_name=served_model_name, api_key=api_key or None,
            query_instruction=query_instruction or None, document_instruction=document_instruction or None,
            pooling_mode=pooling_mode, max_length=max_length, normalize=normalize, dtype=dtype, device=device,
            batch_size=batch_size, max_batch_tokens=max_batch_tokens, batch_wait_ms=batch_wait_ms, max_queue_tokens=max_queue_tokens,
            max_items=max_items, max_request_tokens=max_request_tokens, max_body_bytes=int(max_body_mb * 2**20),
        )
    check_model_or_fail(model, peft_model)
    if ray_replicas:
        from llm2vec_plugins.serving.ray_serve import run_with_ray

        run_with_ray(settings, host, port, num_replicas=ray_replicas, gpus_per_replica=ray_gpus_per_replica,
                     address=ray_address)
        return
    app = create_app(EmbeddingService.from_settings(settings))  # loads the model before the port opens
    typer.echo(f"serving {settings.model_name!r} on http://{host}:{port}/v1 (Ctrl-C or SIGTERM stops it gracefully)")
    run_server(app, host, port, max_connections=max_connections, graceful_timeout=graceful_timeout,
               access_log=access_log)


def register(app: typer.Typer) -> None:
    app.command()(serve)
