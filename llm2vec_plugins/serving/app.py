"""The HTTP layer: a FastAPI app over one `EmbeddingService` (OpenAI routes, /health, /metrics), its
guard (API key, body size), OpenAI-shaped errors, and `run_server` (uvicorn, graceful shutdown)."""
from __future__ import annotations

import hmac
import json
import time
import warnings
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm2vec_plugins.serving.schema import EmbeddingRequest, EmbeddingResponse, ErrorResponse, ModelList
from llm2vec_plugins.serving.service import ApiError, EmbeddingService

ROUTES = ("/v1/embeddings", "/v1/models", "/health", "/metrics")
_STARTED = int(time.time())


def create_app(service: EmbeddingService) -> FastAPI:
    """The OpenAI-compatible embeddings app for `service`; its shutdown finishes queued requests.

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app(EmbeddingService.from_settings(ServeSettings(model="m"))), port=8000)
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await service.close()

    app = FastAPI(title="llm2vec embeddings", lifespan=lifespan,
                  responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}})
    app.state.service = service
    app.add_middleware(RequestGuard, service=service)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": EmbeddingRequest.model_json_schema()}}}})
    async def embeddings(request: Request) -> Response:
        """Embed `input` (OpenAI's embeddings API, plus `instruction` / `input_type` / pairs)."""
        body = await request.body()
        if not body.strip():
            raise ApiError(400, "the request body is empty; send a JSON object with an 'input' field")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from err
        if not isinstance(payload, dict):
            raise ApiError(400, f"the request body must be a JSON object, got {type(payload).__name__}")
        try:
            parsed = EmbeddingRequest.model_validate(payload)
        except ValidationError as err:
            message, param = _validation_message(err)
            raise ApiError(400, message, param=param) from err
        return Response(await service.embed(parsed), media_type="application/json")

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": _STARTED,
                                            "owned_by": "llm2vec-plugins"} for name in service.model_ids]}

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 while serving; 503 once shutdown began (a load balancer stops routing here)."""
        if service.closing:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        return JSONResponse({"status": "ok", "model": service.name, "dimensions": service.dim,
                             "queue_requests": service.batcher.queue_depth})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    return app


def _validation_message(err: ValidationError) -> tuple[str, str | None]:
    """One line saying what is wrong with the request and which field, from pydantic's first error."""
    first = err.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    field = loc[0] if loc else None
    if first["type"] == "extra_forbidden":
        return (f"unknown field {field!r}; this endpoint takes: {', '.join(EmbeddingRequest.model_fields)}", field)
    if first["type"] == "missing":
        return f"missing required field {field!r}", field
    message = first["msg"]
    # Our own input errors name the item already ("input[3] is an empty string ...").
    return (message if message.startswith(field or "\0") else f"{'.'.join(loc)}: {message}"), field


def _error_response(status: int, message: str, type: str, code: str | None = None, param: str | None = None,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status, headers=headers)


async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    return _error_response(err.status, err.message, err.type, err.code, err.param, err.headers)


async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    # Unknown routes (404) and wrong methods (405), in OpenAI's shape.
    message = f"{request.method} {request.url.path}: {err.detail}"
    return _error_response(err.status_code, message, "invalid_request_error", headers=getattr(err, "headers", None))


async def _unexpected_error(request: Request, err: Exception) -> JSONResponse:
    return _error_response(500, f"internal error: {type(err).__name__}: {err}", "server_error")


class RequestGuard:
    """ASGI middleware in front of every route: the API key and the body size limit for /v1 routes
    (checked before the body is read, so a refused request costs nothing), and latency metrics."""

    def __init__(self, app, service: EmbeddingService) -> None:
        self.app = app
        self.service = service
        key = service.settings.api_key
        self.api_key = key.get_secret_value().encode() if key is not None else None
        self.max_body = service.settings.max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else "other"
        status = 500

        async def send_tracked(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope, path) if path.startswith("/v1/") else None
            if refusal is None and scope["method"] == "POST":
                body, refusal = await self._read_body(receive)
                if refusal is None:
                    receive = _replay(body, receive)
            if refusal is not None:
                await refusal(scope, receive, send_tracked)
            else:
                await self.app(scope, receive, send_tracked)
        finally:
            self.service.metrics.observe_request(route, status, time.perf_counter() - start)

    def _refusal(self, scope, path: str) -> JSONResponse | None:
        headers = dict(scope["headers"])
        if self.api_key is not None:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if not given:
                self.service.metrics.rejected.labels("unauthorized").inc()
                return _error_response(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                                       "invalid_request_error", "invalid_api_key",
                                       headers={"WWW-Authenticate": "Bearer"})
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                self.service.metrics.rejected.labels("unauthorized").inc()
                return _error_response(401, "invalid API key", "invalid_request_error", "invalid_api_key",
                                       headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return self._too_large(int(length))
        return None

    def _too_large(self, size: int | None) -> JSONResponse:
        self.service.metrics.rejected.labels("body_too_large").inc()
        what = f"{size} bytes" if size is not None else "more"
        return _error_response(413, f"request body of {what} exceeds this server's limit of {self.max_body} "
                                    "bytes; send fewer or shorter texts per request", "invalid_request_error",
                               "request_too_large")

    async def _read_body(self, receive) -> tuple[bytes, JSONResponse | None]:
        # Read here, bounded, so a chunked body without Content-Length cannot grow past the limit either.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", self._too_large(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _replay(body: bytes, receive):
    """A receive channel that gives the already-read body once, then the client's own messages."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # waits for the client's disconnect, as the original would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, *, max_connections: int | None = None,
               graceful_timeout: float = 30.0, access_log: bool = False, log_level: str = "info") -> None:
    """Serve `app` with uvicorn until SIGINT / SIGTERM, then stop accepting connections, finish the
    requests in flight (up to `graceful_timeout` seconds) and the queued batches, and exit.

    `max_connections` caps concurrent connections; uvicorn answers 503 beyond it.
    """
    import uvicorn

    # encode() warns on every call that truncates; on a server that is one line per request. The cut
    # itself is documented (inputs longer than the model's max_length are cut as encode() cuts them).
    warnings.filterwarnings("ignore", message=r".* texts were longer than max_length", category=UserWarning)
    uvicorn.run(app, host=host, port=port, limit_concurrency=max_connections,
                timeout_graceful_shutdown=int(graceful_timeout), access_log=access_log, log_level=log_level)
