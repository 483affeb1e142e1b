#!/opt/qdrant-labstandin/venv/bin/python3
"""Qdrant LAB STAND-IN: this is NOT Qdrant's server.

The real Qdrant server binary cannot be fetched in the test lab (GitHub is unreachable), so
lab hosts run this small HTTP server in its place. It speaks the subset of Qdrant's REST API
that the textbook backend and the roles use, and keeps each collection in a Qdrant Edge shard
(``qdrant-edge-py``: Qdrant's own engine as an in-process library), so storage, filters,
sparse vectors with IDF, prefetch and fusion are Qdrant's engine, not re-implemented here.
Request and response bodies are validated with qdrant-client's REST models.

It is started exactly like the real binary (``qdrant --config-path /etc/qdrant/config.yaml``)
and reads the same config keys: service.host, service.http_port, service.api_key,
service.read_only_api_key (reads only, as Qdrant's: what serves the backend during a key
rotation), storage.storage_path, storage.snapshots_path. Snapshots (create, list, download, delete,
recover from a file under the snapshots path, upload) are tar archives of the stand-in's own
collection directory, taken after a flush under the collection's lock: they restore into the
stand-in, not into a real Qdrant server. It has no gRPC port, no cluster mode (it refuses to
start when cluster.enabled is true) and no telemetry of any kind. Production installs the real
binary; see roles/qdrant/README.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import qdrant_edge as edge
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client.http import models

LOG = logging.getLogger("qdrant-labstandin")
TITLE = (
    "qdrant lab stand-in (NOT Qdrant's server; Qdrant Edge "
    f"{package_version('qdrant-edge-py')} behind Qdrant's REST API)"
)
# Qdrant answers these without an API key (probes must not need the secret).
UNAUTHENTICATED_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz"})
# Seconds requests on already open connections are still answered after SIGTERM.
STOP_GRACE_SECONDS = 1.0
# Operations a read-only API key may call (Qdrant: reads, searches, counts, snapshot listings).
READ_ONLY_OPERATIONS = frozenset(
    {
        "root_info",
        "list_collections",
        "get_collection",
        "collection_exists",
        "retrieve",
        "get_point",
        "scroll",
        "count",
        "query",
        "query_batch",
        "list_snapshots",
        "download_snapshot",
    }
)
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
SNAPSHOT_SUFFIX = ".snapshot"

Json = Any
Handler = Callable[["Request"], Json]

DISTANCES = {
    models.Distance.COSINE: edge.Distance.Cosine,
    models.Distance.DOT: edge.Distance.Dot,
    models.Distance.EUCLID: edge.Distance.Euclid,
    models.Distance.MANHATTAN: edge.Distance.Manhattan,
}
SCHEMA_TYPES = {
    models.PayloadSchemaType.KEYWORD: edge.PayloadSchemaType.Keyword,
    models.PayloadSchemaType.INTEGER: edge.PayloadSchemaType.Integer,
    models.PayloadSchemaType.FLOAT: edge.PayloadSchemaType.Float,
    models.PayloadSchemaType.GEO: edge.PayloadSchemaType.Geo,
    models.PayloadSchemaType.TEXT: edge.PayloadSchemaType.Text,
    models.PayloadSchemaType.BOOL: edge.PayloadSchemaType.Bool,
    models.PayloadSchemaType.DATETIME: edge.PayloadSchemaType.Datetime,
    models.PayloadSchemaType.UUID: edge.PayloadSchemaType.Uuid,
}
SCHEMA_NAMES = {value: key.value for key, value in SCHEMA_TYPES.items()}


class ApiError(Exception):
    """An error answered to the client with Qdrant's error body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unsupported(what: str) -> ApiError:
    return ApiError(
        HTTPStatus.BAD_REQUEST, f"Wrong input: {what} is not supported by the lab stand-in"
    )


class Raw:
    """A response sent as is, not wrapped in Qdrant's {"result": ...} envelope."""

    def __init__(self, body: Json, content_type: str = "application/json") -> None:
        self.body = body
        self.content_type = content_type


class FileResponse:
    """A file sent as the response body (snapshot download)."""

    def __init__(self, path: Path) -> None:
        self.path = path


@functools.cache
def adapter(model_type: Any) -> TypeAdapter[Any]:
    """Building an adapter costs more than validating a body with it: one per model."""
    return TypeAdapter(model_type)


class Request:
    """One parsed HTTP request: path parameters, query string, JSON body or uploaded file."""

    def __init__(
        self,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Json,
        upload: Path | None = None,
    ) -> None:
        self.params = params
        self.query = query
        self.body = body
        self.upload = upload

    def model(self, model_type: Any) -> Any:
        """Validate the JSON body against one of qdrant-client's REST models."""
        try:
            return adapter(model_type).validate_python(self.body)
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Format error in JSON body: {exc}") from exc


# --- REST models -> Qdrant Edge ------------------------------------------------------------


def point_id(value: Any) -> Any:
    """An id as Edge takes it: an unsigned integer or a UUID string."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise ApiError(HTTPStatus.BAD_REQUEST, f"Wrong input: bad point id {value!r}")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def to_match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return edge.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        values: Any = list(match.any)
        return edge.MatchAny(values)
    if isinstance(match, models.MatchExcept):
        excluded: Any = list(match.except_)
        return edge.MatchExcept(excluded)
    if isinstance(match, models.MatchText):
        return edge.MatchText(match.text)
    raise unsupported(type(match).__name__)


def to_condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return to_filter(condition)
    if isinstance(condition, models.FieldCondition):
        rng: Any = None
        if isinstance(condition.range, models.Range):
            rng = edge.RangeFloat(
                gte=condition.range.gte,
                gt=condition.range.gt,
                lte=condition.range.lte,
                lt=condition.range.lt,
            )
        elif condition.range is not None:
            raise unsupported("this range")
        if (
            condition.geo_bounding_box
            or condition.geo_radius
            or condition.geo_polygon
            or condition.values_count
        ):
            raise unsupported("this field condition")
        return edge.FieldCondition(
            key=condition.key,
            match=to_match(condition.match) if condition.match is not None else None,
            range=rng,
            is_empty=condition.is_empty,
            is_null=condition.is_null,
        )
    if isinstance(condition, models.IsEmptyCondition):
        return edge.IsEmptyCondition(condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return edge.IsNullCondition(condition.is_null.key)
    if isinstance(condition, models.HasIdCondition):
        return edge.HasIdCondition({point_id(i) for i in condition.has_id})
    if isinstance(condition, models.HasVectorCondition):
        return edge.HasVectorCondition(condition.has_vector)
    if isinstance(condition, models.NestedCondition):
        return edge.NestedCondition(condition.nested.key, to_filter(condition.nested.filter))
    raise unsupported(type(condition).__name__)


def to_filter(flt: models.Filter | None) -> Any:
    if flt is None:
        return None
    min_should = None
    if flt.min_should is not None:
        min_should = edge.MinShould(
            [to_condition(c) for c in flt.min_should.conditions], flt.min_should.min_count
        )
    return edge.Filter(
        must=[to_condition(c) for c in as_list(flt.must)] or None,
        should=[to_condition(c) for c in as_list(flt.should)] or None,
        must_not=[to_condition(c) for c in as_list(flt.must_not)] or None,
        min_should=min_should,
    )


def to_vector(vector: Any) -> Any:
    """One vector (dense list, multi-vector, or sparse) as Edge takes it."""
    if isinstance(vector, models.SparseVector):
        return edge.SparseVector(indices=list(vector.indices), values=list(vector.values))
    if isinstance(vector, list):
        return vector
    raise unsupported(f"vector input {type(vector).__name__}")


def to_query(query: Any, using: str | None) -> Any:
    if query is None:
        return None
    if isinstance(query, models.NearestQuery):
        if query.mmr is not None:
            raise unsupported("MMR")
        query = query.nearest
    if isinstance(query, models.FusionQuery):
        if query.fusion == models.Fusion.RRF:
            return edge.Fusion.Rrf(k=2)  # the server's default k
        return edge.Fusion.Dbsf()
    if isinstance(query, models.RrfQuery):
        return edge.Fusion.Rrf(
            k=query.rrf.k if query.rrf.k is not None else 2, weights=query.rrf.weights
        )
    return edge.Query.Nearest(to_vector(query), using=using or "")


def to_prefetch(prefetch: models.Prefetch) -> Any:
    if prefetch.lookup_from is not None:
        raise unsupported("lookup_from")
    return edge.Prefetch(
        limit=prefetch.limit if prefetch.limit is not None else 10,
        query=to_query(prefetch.query, prefetch.using),
        prefetches=[to_prefetch(p) for p in as_list(prefetch.prefetch)] or None,
        filter=to_filter(prefetch.filter),
        score_threshold=prefetch.score_threshold,
    )


def to_with_payload(value: Any, default: bool) -> Any:
    if value is None:
        return default
    if isinstance(value, models.PayloadSelectorInclude):
        return edge.PayloadSelector.Include(list(value.include))
    if isinstance(value, models.PayloadSelectorExclude):
        return edge.PayloadSelector.Exclude(list(value.exclude))
    return value


# --- Qdrant Edge -> REST JSON --------------------------------------------------------------


def id_json(value: Any) -> Any:
    return value if isinstance(value, int) else str(value)


def vector_json(vector: Any) -> Any:
    if vector is None:
        return None
    if isinstance(vector, edge.SparseVector):
        return {"indices": list(vector.indices), "values": list(vector.values)}
    if isinstance(vector, dict):
        if set(vector) == {""}:
            return vector_json(vector[""])  # the unnamed default vector
        return {name: vector_json(v) for name, v in vector.items()}
    return vector


def record_json(record: Any) -> Json:
    return {
        "id": id_json(record.id),
        "payload": record.payload,
        "vector": vector_json(record.vector),
    }


def scored_json(point: Any) -> Json:
    return {
        "id": id_json(point.id),
        "version": point.version,
        "score": point.score,
        "payload": point.payload,
        "vector": vector_json(point.vector),
    }


# --- collections on disk -------------------------------------------------------------------


class Collection:
    """One collection: the create request as given (collection.json) and its Edge shard."""

    def __init__(self, directory: Path, spec: Json, shard: Any) -> None:
        self.directory = directory
        self.spec = spec
        self.shard = shard

    @staticmethod
    def open(directory: Path) -> Collection:
        spec = json.loads((directory / "collection.json").read_text(encoding="utf-8"))
        return Collection(directory, spec, edge.EdgeShard.load(str(directory / "shard")))

    def close(self) -> None:
        self.shard.flush()
        self.shard.close()


def safe_members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in archive.getmembers():
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"Wrong input: bad snapshot member {member.name}"
            )
        yield member


class StandIn:
    """The REST routes over one Edge shard per collection, guarded by one lock."""

    def __init__(self, storage_path: str, snapshots_path: str) -> None:
        self.root = Path(storage_path) / "collections"
        self.snapshots = Path(snapshots_path)
        self.root.mkdir(parents=True, exist_ok=True)
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.operation = 0
        self.collections: dict[str, Collection] = {}
        for directory in sorted(self.root.iterdir()):
            if (directory / "collection.json").exists():
                self.collections[directory.name] = Collection.open(directory)
            elif directory.name.startswith("."):
                shutil.rmtree(directory, ignore_errors=True)  # a recovery that did not finish
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for method, pattern, handler in (
            ("GET", r"/", self.root_info),
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
            ("POST", r"/collections/{c}/snapshots", self.create_snapshot),
            ("GET", r"/collections/{c}/snapshots", self.list_snapshots),
            ("PUT", r"/collections/{c}/snapshots/recover", self.recover_snapshot),
            ("POST", r"/collections/{c}/snapshots/upload", self.upload_snapshot),
            ("GET", r"/collections/{c}/snapshots/{s}", self.download_snapshot),
            ("DELETE", r"/collections/{c}/snapshots/{s}", self.delete_snapshot),
        ):
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            self.routes.append((method, re.compile(f"^{regex}$"), handler))

    def close(self) -> None:
        with self.lock:
            for collection in self.collections.values():
                collection.close()
            self.collections.clear()

    def dispatch(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        path_matched = False
        for route_method, regex, handler in self.routes:
            match = regex.match(path)
            if match:
                path_matched = True
                if route_method == method:
                    return handler, {k: unquote(v) for k, v in match.groupdict().items()}
        if path_matched:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path} is not allowed")
        raise ApiError(HTTPStatus.NOT_FOUND, f"{path} is not served by the lab stand-in")

    def get(self, name: str) -> Collection:
        collection = self.collections.get(name)
        if collection is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"Not found: Collection `{name}` doesn't exist!")
        return collection

    def call(self, name: str, func: Callable[[Any], Any]) -> Any:
        """Run one engine call on collection `name` under the lock; engine errors are 400s."""
        with self.lock:
            shard = self.get(name).shard
            try:
                return func(shard)
            except ApiError:
                raise
            except Exception as exc:  # Edge raises plain Exception for bad input
                raise ApiError(HTTPStatus.BAD_REQUEST, f"Wrong input: {exc}") from exc

    def update(self, name: str, operation: Any) -> Json:
        self.call(name, lambda shard: shard.update(operation))
        self.operation += 1
        return {"operation_id": self.operation, "status": "completed"}

    # service
    def root_info(self, _: Request) -> Json:
        # the version is qdrant-client's: the client's compatibility check compares with it
        version = package_version("qdrant-client")
        return Raw({"title": TITLE, "version": version, "commit": "labstandin"})

    def healthz(self, _: Request) -> Json:
        return Raw("healthz check passed", "text/plain")

    def readyz(self, _: Request) -> Json:
        return Raw("all shards are ready", "text/plain")

    # collections
    def list_collections(self, _: Request) -> Json:
        with self.lock:
            return {"collections": [{"name": name} for name in sorted(self.collections)]}

    def collection_exists(self, req: Request) -> Json:
        with self.lock:
            return {"exists": req.params["c"] in self.collections}

    def get_collection(self, req: Request) -> Json:
        with self.lock:
            collection = self.get(req.params["c"])
            info = collection.shard.info()
            spec = collection.spec
        schema = {
            field: {
                "data_type": SCHEMA_NAMES.get(index.data_type, "keyword"),
                "points": index.points,
            }
            for field, index in info.payload_schema.items()
        }
        return models.CollectionInfo(
            status=models.CollectionStatus.GREEN,
            optimizer_status=models.OptimizersStatusOneOf.OK,
            indexed_vectors_count=info.indexed_vectors_count,
            points_count=info.points_count,
            segments_count=info.segments_count,
            payload_schema=schema,
            config=models.CollectionConfig(
                params=models.CollectionParams(
                    vectors=spec.get("vectors"), sparse_vectors=spec.get("sparse_vectors")
                ),
                hnsw_config=models.HnswConfig(m=16, ef_construct=100, full_scan_threshold=10000),
                wal_config=models.WalConfig(wal_capacity_mb=32, wal_segments_ahead=0),
                optimizer_config=models.OptimizersConfig(
                    deleted_threshold=0.2,
                    vacuum_min_vector_number=1000,
                    default_segment_number=0,
                    flush_interval_sec=5,
                ),
                metadata=spec.get("metadata"),
            ),
        )

    def create_collection(self, req: Request) -> Json:
        name = req.params["c"]
        if not COLLECTION_NAME.match(name):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Wrong input: bad collection name {name!r}")
        spec: models.CreateCollection = req.model(models.CreateCollection)
        vectors: Any = None
        if isinstance(spec.vectors, models.VectorParams):
            vectors = edge.EdgeVectorParams(
                size=spec.vectors.size, distance=DISTANCES[spec.vectors.distance]
            )
        elif spec.vectors:
            vectors = {
                vname: edge.EdgeVectorParams(size=p.size, distance=DISTANCES[p.distance])
                for vname, p in spec.vectors.items()
            }
        sparse = {
            vname: edge.EdgeSparseVectorParams(
                modifier=edge.Modifier.Idf if p.modifier == models.Modifier.IDF else None
            )
            for vname, p in (spec.sparse_vectors or {}).items()
        } or None
        if not vectors and not sparse:
            raise unsupported("a collection without vectors")
        with self.lock:
            if name in self.collections:
                raise ApiError(
                    HTTPStatus.CONFLICT, f"Wrong input: Collection `{name}` already exists!"
                )
            directory = self.root / name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            shard = edge.EdgeShard.create(
                str(directory / "shard"), edge.EdgeConfig(vectors=vectors, sparse_vectors=sparse)
            )
            saved = spec.model_dump(mode="json", exclude_none=True)
            (directory / "collection.json").write_text(json.dumps(saved), encoding="utf-8")
            self.collections[name] = Collection(directory, saved, shard)
        return True

    def delete_collection(self, req: Request) -> Json:
        with self.lock:
            collection = self.collections.pop(req.params["c"], None)
            if collection is None:
                return False
            collection.close()
            shutil.rmtree(collection.directory)
        return True

    def create_payload_index(self, req: Request) -> Json:
        spec: models.CreateFieldIndex = req.model(models.CreateFieldIndex)
        schema: Any = spec.field_schema
        kind = (
            schema
            if isinstance(schema, models.PayloadSchemaType)
            else getattr(schema, "type", None)
        )
        if kind is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: field_schema is required")
        kind = models.PayloadSchemaType(getattr(kind, "value", kind))
        return self.update(
            req.params["c"],
            edge.UpdateOperation.create_field_index(spec.field_name, SCHEMA_TYPES[kind]),
        )

    def delete_payload_index(self, req: Request) -> Json:
        return self.update(
            req.params["c"], edge.UpdateOperation.delete_field_index(req.params["f"])
        )

    # points
    def upsert(self, req: Request) -> Json:
        operation = req.model(models.PointInsertOperations)
        points = []
        if isinstance(operation, models.PointsBatch):
            batch = operation.batch
            vectors: Any = batch.vectors
            for index, pid in enumerate(batch.ids):
                vector = (
                    {name: to_vector(values[index]) for name, values in vectors.items()}
                    if isinstance(vectors, dict)
                    else to_vector(vectors[index])
                )
                payload = batch.payloads[index] if batch.payloads else None
                points.append(edge.Point(id=point_id(pid), vector=vector, payload=payload))
        else:
            for point in operation.points:
                vector = (
                    {name: to_vector(v) for name, v in point.vector.items()}
                    if isinstance(point.vector, dict)
                    else to_vector(point.vector)
                )
                points.append(
                    edge.Point(id=point_id(point.id), vector=vector, payload=point.payload)
                )
        return self.update(req.params["c"], edge.UpdateOperation.upsert_points(points))

    def retrieve(self, req: Request) -> Json:
        spec: models.PointRequest = req.model(models.PointRequest)
        records = self.call(
            req.params["c"],
            lambda shard: shard.retrieve(
                [point_id(i) for i in spec.ids],
                to_with_payload(spec.with_payload, True),
                spec.with_vector if spec.with_vector is not None else False,
            ),
        )
        return [record_json(r) for r in records]

    def get_point(self, req: Request) -> Json:
        raw: Any = req.params["id"]
        pid = int(raw) if raw.isdigit() else raw
        records = self.call(req.params["c"], lambda shard: shard.retrieve([pid], True, True))
        if not records:
            raise ApiError(HTTPStatus.NOT_FOUND, f"Not found: No point with id {pid} found")
        return record_json(records[0])

    def delete_points(self, req: Request) -> Json:
        selector = req.model(models.PointsSelector)
        if isinstance(selector, models.PointIdsList):
            operation = edge.UpdateOperation.delete_points([point_id(i) for i in selector.points])
        else:
            operation = edge.UpdateOperation.delete_points_by_filter(to_filter(selector.filter))
        return self.update(req.params["c"], operation)

    def set_payload(self, req: Request) -> Json:
        spec: models.SetPayload = req.model(models.SetPayload)
        if spec.points is not None:
            operation = edge.UpdateOperation.set_payload(
                [point_id(i) for i in spec.points], spec.payload, spec.key
            )
        else:
            operation = edge.UpdateOperation.set_payload_by_filter(
                to_filter(spec.filter or models.Filter()), spec.payload, spec.key
            )
        return self.update(req.params["c"], operation)

    def scroll(self, req: Request) -> Json:
        spec: models.ScrollRequest = req.model(models.ScrollRequest)
        if spec.order_by is not None:
            raise unsupported("order_by")
        request = edge.ScrollRequest(
            offset=point_id(spec.offset) if spec.offset is not None else None,
            limit=spec.limit or 10,
            filter=to_filter(spec.filter),
            with_payload=to_with_payload(spec.with_payload, True),
            with_vector=spec.with_vector if spec.with_vector is not None else False,
        )
        records, next_offset = self.call(req.params["c"], lambda shard: shard.scroll(request))
        return {
            "points": [record_json(r) for r in records],
            "next_page_offset": id_json(next_offset) if next_offset is not None else None,
        }

    def count(self, req: Request) -> Json:
        spec: models.CountRequest = req.model(models.CountRequest)
        request = edge.CountRequest(
            exact=spec.exact if spec.exact is not None else True, filter=to_filter(spec.filter)
        )
        return {"count": self.call(req.params["c"], lambda shard: shard.count(request))}

    def _query(self, collection: str, spec: models.QueryRequest) -> Json:
        if spec.lookup_from is not None:
            raise unsupported("lookup_from")
        request = edge.QueryRequest(
            limit=spec.limit or 10,
            offset=spec.offset,
            query=to_query(spec.query, spec.using),
            prefetches=[to_prefetch(p) for p in as_list(spec.prefetch)] or None,
            filter=to_filter(spec.filter),
            score_threshold=spec.score_threshold,
            with_payload=to_with_payload(spec.with_payload, False),
            with_vector=spec.with_vector if spec.with_vector is not None else False,
        )
        points = self.call(collection, lambda shard: shard.query(request))
        return {"points": [scored_json(p) for p in points]}

    def query(self, req: Request) -> Json:
        return self._query(req.params["c"], req.model(models.QueryRequest))

    def query_batch(self, req: Request) -> Json:
        batch: models.QueryRequestBatch = req.model(models.QueryRequestBatch)
        return [self._query(req.params["c"], spec) for spec in batch.searches]

    # snapshots
    def _snapshot_dir(self, name: str) -> Path:
        return self.snapshots / name

    def _snapshot_file(self, collection: str, snapshot: str) -> Path:
        path = self._snapshot_dir(collection) / snapshot
        if "/" in snapshot or not snapshot.endswith(SNAPSHOT_SUFFIX) or not path.is_file():
            raise ApiError(HTTPStatus.NOT_FOUND, f"Not found: Snapshot {snapshot} not found")
        return path

    @staticmethod
    def _describe(path: Path) -> Json:
        checksum_file = path.with_name(path.name + ".checksum")
        stat = path.stat()
        return {
            "name": path.name,
            "size": stat.st_size,
            "creation_time": datetime.fromtimestamp(stat.st_mtime, UTC)
            .replace(tzinfo=None)
            .isoformat(timespec="seconds"),
            "checksum": checksum_file.read_text().strip() if checksum_file.exists() else None,
        }

    def create_snapshot(self, req: Request) -> Json:
        name = req.params["c"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S")
        target_dir = self._snapshot_dir(name)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{name}-{stamp}-{uuid.uuid4().hex[:8]}{SNAPSHOT_SUFFIX}"
        partial = target.with_name("." + target.name + ".part")
        with self.lock:  # no write lands while the files are read
            collection = self.get(name)
            collection.shard.flush()
            with tarfile.open(partial, "w") as archive:
                archive.add(collection.directory / "collection.json", "collection.json")
                archive.add(collection.directory / "shard", "shard")
        digest = hashlib.sha256()
        with partial.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        target.with_name(target.name + ".checksum").write_text(digest.hexdigest() + "\n")
        partial.rename(target)
        LOG.info("snapshot %s of collection %s", target.name, name)
        return self._describe(target)

    def list_snapshots(self, req: Request) -> Json:
        directory = self._snapshot_dir(req.params["c"])
        if not directory.is_dir():
            return []
        return [self._describe(p) for p in sorted(directory.glob(f"*{SNAPSHOT_SUFFIX}"))]

    def download_snapshot(self, req: Request) -> Json:
        return FileResponse(self._snapshot_file(req.params["c"], req.params["s"]))

    def delete_snapshot(self, req: Request) -> Json:
        path = self._snapshot_file(req.params["c"], req.params["s"])
        path.unlink()
        path.with_name(path.name + ".checksum").unlink(missing_ok=True)
        return True

    def recover_snapshot(self, req: Request) -> Json:
        spec: models.SnapshotRecover = req.model(models.SnapshotRecover)
        location = urlsplit(spec.location)
        if location.scheme != "file":
            raise unsupported(
                "recovering from a URL (use file:// under the snapshots path, or upload)"
            )
        path = Path(unquote(location.path)).resolve()
        if not path.is_relative_to(self.snapshots.resolve()) or not path.is_file():
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"Not found: snapshot {path} is not a file under {self.snapshots}",
            )
        self._recover(req.params["c"], path, spec.checksum)
        return True

    def upload_snapshot(self, req: Request) -> Json:
        if req.upload is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: no snapshot file uploaded")
        checksums = req.query.get("checksum")
        checksum = checksums[0] if checksums else None
        self._recover(req.params["c"], req.upload, checksum)
        return True

    def _recover(self, name: str, archive_path: Path, checksum: str | None) -> None:
        """Replace collection `name` (or create it) with the snapshot's contents."""
        if not COLLECTION_NAME.match(name):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Wrong input: bad collection name {name!r}")
        if checksum is not None:
            digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
            if digest != checksum.lower():
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    f"Wrong input: snapshot checksum mismatch: {digest} != {checksum}",
                )
        staging = Path(tempfile.mkdtemp(prefix=f".recover-{name}-", dir=self.root))
        try:
            try:
                with tarfile.open(archive_path) as archive:
                    archive.extractall(staging, members=safe_members(archive))  # noqa: S202
            except tarfile.TarError as exc:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, f"Wrong input: not a stand-in snapshot: {exc}"
                ) from exc
            if (
                not (staging / "collection.json").is_file()
                or not (staging / "shard" / "edge_config.json").is_file()
            ):
                raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: not a stand-in snapshot")
            with self.lock:
                old = self.collections.pop(name, None)
                if old is not None:
                    old.close()
                target = self.root / name
                retired = self.root / f".retired-{name}-{uuid.uuid4().hex[:8]}"
                if target.exists():
                    target.rename(retired)
                staging.rename(target)
                try:
                    self.collections[name] = Collection.open(target)
                except Exception as exc:
                    shutil.rmtree(target, ignore_errors=True)
                    if retired.exists():  # put the collection back as it was
                        retired.rename(target)
                        self.collections[name] = Collection.open(target)
                    raise ApiError(
                        HTTPStatus.BAD_REQUEST, f"Wrong input: snapshot does not load: {exc}"
                    ) from exc
                shutil.rmtree(retired, ignore_errors=True)
            LOG.info("collection %s recovered from %s", name, archive_path.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def read_multipart_file(
    stream: io.BufferedIOBase, length: int, content_type: str, directory: Path
) -> Path:
    """The first file part of a multipart/form-data body, streamed to a file in `directory`."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: expected multipart/form-data")
    boundary = match.group(1).encode()
    handle, name = tempfile.mkstemp(prefix=".upload-", dir=directory)
    path = Path(name)
    with os.fdopen(handle, "wb") as out:
        remaining = length
        while remaining:
            block = stream.read(min(remaining, 1 << 20))
            if not block:
                break
            out.write(block)
            remaining -= len(block)
    with path.open("r+b") as body:
        head = body.read(64 * 1024)
        start = head.find(b"\r\n\r\n")
        if not head.startswith(b"--" + boundary) or start < 0:
            path.unlink()
            raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: malformed multipart body")
        size = path.stat().st_size
        tail_size = min(size, len(boundary) + 64)
        body.seek(size - tail_size)
        tail = body.read()
        end = tail.rfind(b"\r\n--" + boundary)
        if end < 0:
            path.unlink()
            raise ApiError(HTTPStatus.BAD_REQUEST, "Wrong input: malformed multipart body")
        content_end = size - tail_size + end
        # move the part's content to the start of the file and cut the rest
        body.seek(start + 4)
        offset = 0
        while body.tell() < content_end:
            chunk = body.read(min(1 << 20, content_end - body.tell()))
            position = body.tell()
            body.seek(offset)
            body.write(chunk)
            offset += len(chunk)
            body.seek(position)
        body.truncate(offset)
    return path


def to_json(value: Json) -> Json:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def make_handler(
    standin: StandIn,
    api_key: str | None,
    read_only_api_key: str | None = None,
    stopping: threading.Event | None = None,
) -> type[BaseHTTPRequestHandler]:
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
            if stopping is not None and stopping.is_set():
                self.close_connection = True  # a kept-alive client reconnects to the next process
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self, method: str, path: str) -> None:
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
            if hmac.compare_digest(given.encode(), api_key.encode()):
                return
            read_only = read_only_api_key or ""
            if read_only and hmac.compare_digest(given.encode(), read_only.encode()):
                handler, _ = standin.dispatch(method, path)
                if getattr(handler, "__name__", "") in READ_ONLY_OPERATIONS:
                    return
                raise ApiError(HTTPStatus.FORBIDDEN, "Forbidden: read-only API key")
            raise ApiError(HTTPStatus.FORBIDDEN, "Invalid API key or JWT")

        def _send_file(self, path: Path) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Content-Disposition", f'attachment; filename="{path.name}"')
            self.end_headers()
            with path.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile)

        def _handle(self) -> None:
            started = time.monotonic()
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            upload: Path | None = None
            try:
                uploading = url.path.endswith("/snapshots/upload")
                if length > (MAX_UPLOAD_BYTES if uploading else MAX_BODY_BYTES):
                    self.close_connection = True
                    raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Payload too large")
                # a snapshot upload is streamed to disk once it is known to be allowed
                raw = self.rfile.read(length) if length and not uploading else b""
                if uploading:
                    self.close_connection = True  # until its body has been read
                self._authorized(self.command, url.path)
                handler, params = standin.dispatch(self.command, url.path)
                body = None
                if uploading:
                    upload = read_multipart_file(
                        self.rfile, length, self.headers.get("Content-Type", ""), standin.snapshots
                    )
                    self.close_connection = False
                elif raw:
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError as exc:
                        raise ApiError(
                            HTTPStatus.BAD_REQUEST, f"Format error in JSON body: {exc}"
                        ) from exc
                result = handler(Request(params, parse_qs(url.query), body, upload))
                if isinstance(result, FileResponse):
                    self._send_file(result.path)
                    return
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
            finally:
                if upload is not None:
                    upload.unlink(missing_ok=True)
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
    read_only_api_key = (
        os.environ.get("QDRANT__SERVICE__READ_ONLY_API_KEY")
        or service.get("read_only_api_key")
        or None
    )
    storage_path = str(storage.get("storage_path", "./storage"))
    snapshots_path = str(storage.get("snapshots_path", "./snapshots"))

    standin = StandIn(storage_path, snapshots_path)
    stopping = threading.Event()
    handler = make_handler(standin, api_key, read_only_api_key, stopping)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True

    # As Qdrant on SIGTERM: the listener closes at once (new connections are refused, so
    # clients retry them against the next process) and requests on open connections are
    # still answered for a moment, each closing its connection.
    def stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: shutting down", signum)
        stopping.set()
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
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        if stopping.is_set():
            time.sleep(STOP_GRACE_SECONDS)
        standin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
