"""`llm2vec serve`: an OpenAI-compatible embeddings server over the one shared encoder, with dynamic
batching across requests, bounded queueing, limits, an optional API key and Prometheus metrics.

Needs the `serve` extra (`pip install 'llm2vec-plugins[serve]'`: FastAPI, uvicorn, prometheus-client).

Example:
    >>> from llm2vec_plugins.serving import EmbeddingService, ServeSettings, create_app, run_server
    >>> service = EmbeddingService.from_settings(ServeSettings(model="smollm2-135m-llm2vec"))
    >>> run_server(create_app(service), host="127.0.0.1", port=8000)
"""
from llm2vec_plugins.serving.app import create_app, run_server
from llm2vec_plugins.serving.batcher import DynamicBatcher, QueueFull, ShuttingDown
from llm2vec_plugins.serving.schema import EmbeddingRequest
from llm2vec_plugins.serving.service import ApiError, EmbeddingService, ServeSettings

__all__ = ["ApiError", "DynamicBatcher", "EmbeddingRequest", "EmbeddingService", "QueueFull", "ServeSettings",
           "ShuttingDown", "create_app", "run_server"]
