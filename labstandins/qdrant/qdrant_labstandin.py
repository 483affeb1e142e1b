#!/opt/qdrant-labstandin/venv/bin/python3
"""Qdrant LAB STAND-IN: this is NOT Qdrant.

The real Qdrant server binary cannot be fetched in the test lab (GitHub is unreachable), so
lab hosts run this small HTTP server in its place. It speaks the subset of Qdrant's REST API
that the textbook backend uses and keeps the data in qdrant-client's local mode
(``QdrantClient(path=...)``), so collection, filter, sparse-vector and fusion semantics are
qdrant-client's own, not re-implemented here.

It is started exactly like the real binary (``qdrant --config-path /etc/qdrant/config.yaml``)
and reads the same config keys: service.host, service.http_port, service.api_key,
storage.storage_path. It has no gRPC port, no snapshots, no cluster mode (it refuses to start
when cluster.enabled is true) and no telemetry of any kind. Production installs the real
binary; see roles/qdrant/README.md.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models

LOG = logging.getLogger("qdrant-labstandin")
TITLE = "qdrant lab stand-in (NOT Qdrant; qdrant-client local mode behind Qdrant's REST API)"
# Qdrant answers these without an API key (probes must not need the secret).
UNAUTHENTICATED_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz"})
MAX_BODY_BYTES = 64 * 1024 * 1024

Json = Any
Handler = Callable[["Request"], Json]


class ApiError(Exception):
    """An error answered to the client with Qdrant's error body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Raw:
    """A response sent as is, not wrapped in Qdrant's {"result": ...} envelope."""

    def __init__(self, body: Json, content_type: str = "application/json") -> None:
        self.body = body
        self.content_type = content_type


class Request:
    """One parsed HTTP request: path parameters, query string and JSON body."""

    def __init__(self, params: dict[str, str], query: dict[str, list[str]], body: Json) -> None:
        self.params = params
        self.query = query
        self.body = body

    def model(self, model_type: Any) -> Any:
        """Validate the JSON body against one of qdrant-client's REST models."""
        try:
            return TypeAdapter(model_type).validate_python(self.body)
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Format error in JSON body: {exc}") from exc


class StandIn:
    """The REST routes, backed by one local-mode QdrantClient guarded by a lock."""

    def __init__(self, storage_path: str) -> None:
        os.makedirs(storage_path, exist_ok=True)
        self.client = QdrantClient(path=storage_path)
        # local mode is not thread-safe; the HTTP server is threaded
        self.lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for method, pattern, handler in (
            ("GET", r"/", self.root),
            ("GET", r"/healthz", self.healthz),
            ("GET", r"/livez", self.healthz),
            ("GET", r"/readyz", self.readyz),
            ("GET", r"/collections", self.list_collections),
            ("GET", r"/collections/{c}", self.get_collection),
            ("PUT", r"/collections/{c}", self.create_collection),
            ("DELETE", r"/collections/{c}", self.delete_collection),
            ("GET", r"/collections/{c}/exists", self.collection_exists),
            ("PUT", r"/collections/{c}/index", self.create_payload_index),
            ("DELETE", r"/collections/{c}/index/{f}", self.delete_payload_index),
            ("PUT", r"/collections/{c}/points", self.upsert),
            ("POST", r"/collections/{c}/points", self.retrieve),
            ("GET", r"/collections/{c}/points/{id}", self.get_point),
            ("POST", r"/collections/{c}/points/delete", self.delete_points),
            ("POST", r"/collections/{c}/points/payload", self.set_payload),
            ("POST", r"/collections/{c}/points/scroll", self.scroll),
            ("POST", r"/collections/{c}/points/count", self.count),
            ("POST", r"/collections/{c}/points/query", self.query),
            ("POST", r"/collections/{c}/points/query/batch", self.query_batch),
        ):
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            self.routes.append((method, re.compile(f"^{regex}$"), handler))

    def close(self) -> None:
        with self.lock:
            self.client.close()

    def dispatch(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        path_matched = False
        for route_method, regex, handler in self.routes:
            match = regex.match(path)
            if match:
                path_matched = True
                if route_method == method:
                    return handler, match.groupdict()
        if path_matched:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path} is not allowed")
        raise ApiError(HTTPStatus.NOT_FOUND, f"{path} is not served by the lab stand-in")

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one local-mode call under the lock, mapping its errors to Qdrant's statuses."""
        with self.lock:
            try:
                return func(*args, **kwargs)
            except ValueError as exc:
                message = str(exc)
                if "not found" in message.lower():
                    raise ApiError(HTTPStatus.NOT_FOUND, f"Not found: {message}") from exc
                if "already exists" in message.lower():
                    raise ApiError(HTTPStatus.CONFLICT, f"Wrong input: {message}") from exc
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Wrong input: {message}") from exc

    # service
    def root(self, _: Request) -> Json:
        # the version is qdrant-client's: the client's compatibility check compares with it
        version = package_version("qdrant-client")
        return Raw({"title": TITLE, "version": version, "commit": "labstandin"})

    def healthz(self, _: Request) -> Json:
        return Raw("healthz check passed", "text/plain")

    def readyz(self, _: Request) -> Json:
        return Raw("all shards are ready", "text/plain")

    # collections
    def list_collections(self, _: Request) -> Json:
        return self.call(self.client.get_collections)

    def get_collection(self, req: Request) -> Json:
        return self.call(self.client.get_collection, req.params["c"])

    def collection_exists(self, req: Request) -> Json:
        return {"exists": self.call(self.client.collection_exists, req.params["c"])}

    def create_collection(self, req: Request) -> Json:
        spec: models.CreateCollection = req.model(models.CreateCollection)
        return self.call(
            self.client.create_collection,
            req.params["c"],
            vectors_config=spec.vectors,
            sparse_vectors_config=spec.sparse_vectors,
            metadata=spec.metadata,
        )

    def delete_collection(self, req: Request) -> Json:
        return self.call(self.client.delete_collection, req.params["c"])

    def create_payload_index(self, req: Request) -> Json:
        spec: models.CreateFieldIndex = req.model(models.CreateFieldIndex)
        return self.call(
            self.client.create_payload_index,
            req.params["c"],
            field_name=spec.field_name,
            field_schema=spec.field_schema,
        )

    def delete_payload_index(self, req: Request) -> Json:
        return self.call(self.client.delete_payload_index, req.params["c"], req.params["f"])

    # points
    def upsert(self, req: Request) -> Json:
        operation = req.model(models.PointInsertOperations)
        if isinstance(operation, models.PointsBatch):
            points: Any = operation.batch
        else:
            points = operation.points
        return self.call(self.client.upsert, req.params["c"], points=points)

    def retrieve(self, req: Request) -> Json:
        spec: models.PointRequest = req.model(models.PointRequest)
        return self.call(
            self.client.retrieve,
            req.params["c"],
            ids=spec.ids,
            with_payload=True if spec.with_payload is None else spec.with_payload,
            with_vectors=False if spec.with_vector is None else spec.with_vector,
        )

    def get_point(self, req: Request) -> Json:
        point_id: Any = req.params["id"]
        if point_id.isdigit():
            point_id = int(point_id)
        records = self.call(
            self.client.retrieve, req.params["c"], ids=[point_id], with_vectors=True
        )
        if not records:
            raise ApiError(HTTPStatus.NOT_FOUND, f"Not found: No point with id {point_id} found")
        return records[0]

    def delete_points(self, req: Request) -> Json:
        selector = req.model(models.PointsSelector)
        return self.call(self.client.delete, req.params["c"], points_selector=selector)

    def set_payload(self, req: Request) -> Json:
        spec: models.SetPayload = req.model(models.SetPayload)
        selector: Any = (
            models.PointIdsList(points=spec.points)
            if spec.points is not None
            else models.FilterSelector(filter=spec.filter or models.Filter())
        )
        return self.call(
            self.client.set_payload,
            req.params["c"],
            payload=spec.payload,
            points=selector,
            key=spec.key,
        )

    def scroll(self, req: Request) -> Json:
        spec: models.ScrollRequest = req.model(models.ScrollRequest)
        points, next_offset = self.call(
            self.client.scroll,
            req.params["c"],
            scroll_filter=spec.filter,
            limit=spec.limit or 10,
            order_by=spec.order_by,
            offset=spec.offset,
            with_payload=True if spec.with_payload is None else spec.with_payload,
            with_vectors=False if spec.with_vector is None else spec.with_vector,
        )
        return models.ScrollResult(points=points, next_page_offset=next_offset)

    def count(self, req: Request) -> Json:
        spec: models.CountRequest = req.model(models.CountRequest)
        return self.call(self.client.count, req.params["c"], count_filter=spec.filter)

    def _query(self, collection: str, spec: models.QueryRequest) -> models.QueryResponse:
        result: models.QueryResponse = self.call(
            self.client.query_points,
            collection,
            query=spec.query,
            using=spec.using,
            prefetch=spec.prefetch,
            query_filter=spec.filter,
            search_params=spec.params,
            limit=spec.limit or 10,
            offset=spec.offset,
            with_payload=True if spec.with_payload is None else spec.with_payload,
            with_vectors=False if spec.with_vector is None else spec.with_vector,
            score_threshold=spec.score_threshold,
            lookup_from=spec.lookup_from,
        )
        return result

    def query(self, req: Request) -> Json:
        return self._query(req.params["c"], req.model(models.QueryRequest))

    def query_batch(self, req: Request) -> Json:
        batch: models.QueryRequestBatch = req.model(models.QueryRequestBatch)
        return [self._query(req.params["c"], spec) for spec in batch.searches]


def to_json(value: Json) -> Json:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def make_handler(standin: StandIn, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    class QdrantRestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "qdrant-labstandin"

        def log_message(self, format: str, *args: Any) -> None:
            LOG.info("%s %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, payload: Json, content_type: str) -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self, path: str) -> None:
            if api_key is None or path in UNAUTHENTICATED_PATHS:
                return
            given = self.headers.get("api-key")
            bearer = self.headers.get("Authorization", "")
            if given is None and bearer.lower().startswith("bearer "):
                given = bearer[len("bearer ") :]
            if given is None:
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED,
                    "Must provide an API key or an Authorization bearer token",
                )
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                raise ApiError(HTTPStatus.FORBIDDEN, "Invalid API key or JWT")

        def _handle(self) -> None:
            started = time.monotonic()
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            try:
                if length > MAX_BODY_BYTES:
                    self.close_connection = True
                    raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Payload too large")
                raw = self.rfile.read(length) if length else b""
                self._authorized(url.path)
                handler, params = standin.dispatch(self.command, url.path)
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError as exc:
                    raise ApiError(
                        HTTPStatus.BAD_REQUEST, f"Format error in JSON body: {exc}"
                    ) from exc
                result = handler(Request(params, parse_qs(url.query), body))
                if isinstance(result, Raw):
                    self._send(HTTPStatus.OK, result.body, result.content_type)
                    return
                payload = {"result": to_json(result), "status": "ok"}
                status = HTTPStatus.OK
            except ApiError as exc:
                payload = {"status": {"error": exc.message}}
                status = exc.status
            except Exception as exc:  # a bug or an unsupported input: answer, keep serving
                LOG.exception("request failed")
                payload = {"status": {"error": f"Service internal error: {exc}"}}
                status = HTTPStatus.INTERNAL_SERVER_ERROR
            payload["time"] = time.monotonic() - started
            self._send(status, payload, "application/json")

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

    return QdrantRestHandler


def load_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict):
        raise SystemExit(f"{path}: expected a mapping")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qdrant", description=TITLE)
    parser.add_argument("--config-path", default="config/config.yaml")
    # accepted for command-line parity with Qdrant; cluster mode is refused below
    parser.add_argument("--uri")
    parser.add_argument("--bootstrap")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")

    config = load_config(args.config_path)
    service = config.get("service") or {}
    storage = config.get("storage") or {}
    if (config.get("cluster") or {}).get("enabled"):
        LOG.error("cluster mode is configured; the lab stand-in has none (real Qdrant only)")
        return 2
    host = str(service.get("host", "0.0.0.0"))  # noqa: S104 - Qdrant's own default
    port = int(service.get("http_port", 6333))
    api_key = os.environ.get("QDRANT__SERVICE__API_KEY") or service.get("api_key") or None
    storage_path = str(storage.get("storage_path", "./storage"))

    standin = StandIn(storage_path)
    server = ThreadingHTTPServer((host, port), make_handler(standin, api_key))
    server.daemon_threads = True

    def stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.warning(
        "LAB STAND-IN, NOT QDRANT: serving REST on %s:%d, storage %s, api key %s",
        host,
        port,
        storage_path,
        "required" if api_key else "NOT required",
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        standin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
