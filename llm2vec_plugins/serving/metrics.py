"""The server's Prometheus metrics, in a registry of its own (several servers may share a process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from llm2vec_plugins.serving.batcher import BatchStats

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)


class ServerMetrics:
    """Queue depth, batch sizes, tokens (tokens/s is `rate(llm2vec_tokens_total[1m])`), latency, errors.

    Example:
        >>> metrics = ServerMetrics()
        >>> metrics.exposition()[:20]
        b'# HELP llm2vec_queue'
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_requests = Gauge("llm2vec_queue_requests", "Requests waiting for the encoder", registry=r)
        self.queue_tokens = Gauge("llm2vec_queue_tokens", "Tokens waiting for the encoder", registry=r)
        self.batch_requests = Histogram("llm2vec_batch_requests", "Requests per encode call",
                                        buckets=_COUNT_BUCKETS, registry=r)
        self.batch_inputs = Histogram("llm2vec_batch_inputs", "Inputs (texts) per encode call",
                                      buckets=_COUNT_BUCKETS, registry=r)
        self.batch_tokens = Histogram("llm2vec_batch_tokens", "Tokens per encode call",
                                      buckets=_TOKEN_BUCKETS, registry=r)
        self.encode_seconds = Histogram("llm2vec_encode_duration_seconds", "Time of one encode call",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("llm2vec_tokens", "Tokens encoded", registry=r)
        self.inputs = Counter("llm2vec_inputs", "Inputs (texts) encoded", registry=r)
        self.requests = Counter("llm2vec_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=r)
        self.latency = Histogram("llm2vec_request_duration_seconds", "Time from request to response, by route",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("llm2vec_rejected_requests", "Requests refused before encoding, by reason",
                                ["reason"], registry=r)

    def observe_queue(self, requests: int, tokens: int) -> None:
        self.queue_requests.set(requests)
        self.queue_tokens.set(tokens)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_requests.observe(stats.requests)
        self.batch_inputs.observe(stats.inputs)
        self.batch_tokens.observe(stats.tokens)
        self.encode_seconds.observe(stats.seconds)
        self.tokens.inc(stats.tokens)
        self.inputs.inc(stats.inputs)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (what GET /metrics returns)."""
        return generate_latest(self.registry)
