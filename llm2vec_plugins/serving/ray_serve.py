"""Replicas of the embeddings app behind Ray Serve: Ray routes requests and places replicas (one per
GPU with `gpus_per_replica=1`); each replica is the same app, batching its own requests.

Needs `ray[serve]` (the `serve` extra does not pull Ray in; `pip install 'llm2vec-plugins[serve,ray]'`
plus `ray[serve]`).
"""
from __future__ import annotations

from llm2vec_plugins.serving.service import ServeSettings


def build_deployment(settings: ServeSettings, *, num_replicas: int = 2, gpus_per_replica: float = 0.0,
                     cpus_per_replica: float = 1.0, name: str = "llm2vec-embeddings"):
    """A bound Ray Serve application of `num_replicas` copies of the embeddings app; each replica
    loads the model when Ray starts it.

    Example:
        >>> from ray import serve
        >>> serve.start(http_options={"host": "127.0.0.1", "port": 8000})
        >>> serve.run(build_deployment(ServeSettings(model="m"), num_replicas=2, gpus_per_replica=1), route_prefix="/")
    """
    from ray import serve

    def build_app():
        # Runs on the replica, in its own process: the model loads there, not in the driver.
        from llm2vec_plugins.serving.app import create_app
        from llm2vec_plugins.serving.service import EmbeddingService

        return create_app(EmbeddingService.from_settings(settings))

    @serve.deployment(name=name, num_replicas=num_replicas,
                      ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica})
    @serve.ingress(build_app)
    class EmbeddingsReplica:
        pass

    return EmbeddingsReplica.bind()


def run_with_ray(settings: ServeSettings, host: str, port: int, *, num_replicas: int, gpus_per_replica: float = 0.0,
                 cpus_per_replica: float = 1.0, address: str | None = None) -> None:
    """Start (or join, with `address`) Ray, serve `num_replicas` replicas on host:port until interrupted."""
    import ray
    from ray import serve

    ray.init(address=address, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(build_deployment(settings, num_replicas=num_replicas, gpus_per_replica=gpus_per_replica,
                                   cpus_per_replica=cpus_per_replica), route_prefix="/", blocking=True)
    finally:
        serve.shutdown()
