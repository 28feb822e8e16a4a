"""One OpenAPI document for the whole platform, merged from the services' own documents.

:func:`merge_openapi` is pure: the gateway feeds it the upstreams' live ``/openapi.json`` and the
``churn openapi`` command feeds it documents built offline from in-process apps.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from churn_gateway.authentication import is_internal_path
from churn_gateway.exceptions import BadGatewayError, OpenAPIMergeError, UpstreamUnavailableError
from churn_shared.app import PROBLEM_SCHEMA
from churn_shared.logging import get_logger

_log = get_logger(__name__)

#: The gateway's security scheme: the access token from ``POST /v1/auth/login``.
SECURITY_SCHEME_NAME = "BearerAuth"
SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "Access token from POST /v1/auth/login (EdDSA-signed JWT), or an integrator's API key "
        "(`ck_...`, also accepted as `X-API-Key`), limited by its scopes."
    ),
}

#: Operations that the gateway lets through without a token (method, path).
PUBLIC_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/v1/auth/register"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/refresh"),
        ("POST", "/v1/auth/logout"),
        ("GET", "/v1/auth/.well-known/jwks.json"),
        # Probes of the inference protocols (orchestrators and inference clients poll them).
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/ping"),
        ("GET", "/health"),
    }
)

#: The name of the gateway's own document among the merged ones.
GATEWAY_PART = "gateway"

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_PROBLEM_CONTENT: dict[str, Any] = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
#: What the gateway itself may answer on any /v1 operation, whatever the service documents.
EDGE_RESPONSES: dict[str, dict[str, Any]] = {
    "429": {
        "description": (
            "Too many requests: the gateway's per-address or per-tenant rate limit "
            "(or the service's own); wait Retry-After seconds"
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": _PROBLEM_CONTENT,
    },
    "502": {"description": "The service failed to answer", "content": _PROBLEM_CONTENT},
    "503": {"description": "The service is unreachable", "content": _PROBLEM_CONTENT},
    "504": {"description": "The service did not answer in time", "content": _PROBLEM_CONTENT},
}


def _add_edge_responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for code, response in EDGE_RESPONSES.items():
        responses.setdefault(code, copy.deepcopy(response))


def _bearer_scheme_names(doc: Mapping[str, Any]) -> set[str]:
    schemes = doc.get("components", {}).get("securitySchemes", {})
    return {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer"
    }


def _rewrite_security(
    requirements: Iterable[Mapping[str, Any]], bearer_names: set[str]
) -> list[dict[str, Any]]:
    rewritten: list[dict[str, Any]] = []
    for requirement in requirements:
        item = {
            (SECURITY_SCHEME_NAME if name in bearer_names else name): scopes
            for name, scopes in requirement.items()
        }
        if item not in rewritten:
            rewritten.append(item)
    return rewritten


def _merge_named(
    target: dict[str, Any],
    owners: dict[str, str],
    section: str,
    items: Mapping[str, Any],
    service: str,
) -> None:
    for name, value in items.items():
        if name not in target:
            target[name] = value
            owners[name] = service
        elif target[name] != value:
            raise OpenAPIMergeError(
                f"components.{section}.{name} differs between {owners[name]!r} and "
                f"{service!r}; rename one of them"
            )


def _link(operation_id: str, parameter: str, pointer: str, description: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "parameters": {parameter: f"$response.body#/{pointer}"},
        "description": description,
    }


def _links_to(
    operations: Iterable[tuple[str, str]], parameter: str, pointer: str
) -> dict[str, dict[str, Any]]:
    """``name → link`` for each ``(name, operationId)``, all fed the same response field."""
    return {
        name: _link(
            operation_id, parameter, pointer, f"The new resource's `{pointer}` as `{parameter}`"
        )
        for name, operation_id in operations
    }


#: OpenAPI links: what a created resource's id is good for (``operationId → status → links``).
#: Generated clients and documentation show them; schemathesis follows them in its stateful
#: phase (create, then read, change and delete what was created).
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "customers_create": {
        "201": _links_to(
            [
                ("GetCustomer", "customers_get"),
                ("UpdateCustomer", "customers_update"),
                ("DeleteCustomer", "customers_delete"),
                ("GetFeatures", "customers_features"),
                ("GetScores", "customers_scores"),
            ],
            "customer_id",
            "customer_id",
        )
    },
    "cohorts_create": {
        "201": _links_to(
            [
                ("GetCohort", "cohorts_get"),
                ("UpdateCohort", "cohorts_update"),
                ("DeleteCohort", "cohorts_delete"),
                ("GetCohortStats", "cohorts_stats"),
            ],
            "cohort_id",
            "id",
        )
    },
    "alert_channels_create": {
        "201": _links_to(
            [
                # Not the channel test: it would send a message to whatever URL was made up.
                ("EnableChannel", "alert_channels_enable"),
                ("DeleteChannel", "alert_channels_delete"),
            ],
            "channel_id",
            "id",
        )
    },
    "api_keys_create": {"201": _links_to([("RevokeKey", "api_keys_revoke")], "key_id", "id")},
    "users_create": {"201": _links_to([("UpdateUser", "users_update")], "user_id", "id")},
    "models_train": {"202": _links_to([("GetJob", "models_get_job")], "job_id", "job_id")},
    "prediction_jobs_create": {
        "202": _links_to(
            [
                ("GetJob", "prediction_jobs_get"),
                ("GetResult", "prediction_jobs_result"),
                ("GetErrors", "prediction_jobs_errors"),
            ],
            "job_id",
            "job_id",
        )
    },
    "customers_import": {
        "202": _links_to([("GetImport", "customers_import_get")], "import_id", "import_id")
    },
}


def _add_links(merged: dict[str, Any]) -> None:
    """Attach :data:`LINKS` to the operations the merged document has (a link whose target
    is missing is left out, so a partial merge stays valid)."""
    operations = {
        operation.get("operationId"): operation
        for item in merged["paths"].values()
        for method, operation in item.items()
        if method in _HTTP_METHODS
    }
    for source, by_status in LINKS.items():
        operation = operations.get(source)
        if operation is None:
            continue
        for status, links in by_status.items():
            response = operation.get("responses", {}).get(status)
            if response is None:
                continue
            kept = {k: v for k, v in links.items() if v["operationId"] in operations}
            if kept:
                response["links"] = {**response.get("links", {}), **kept}


def merge_openapi(
    docs: Mapping[str, dict[str, Any]],
    *,
    title: str,
    version: str,
    description: str = "",
) -> dict[str, Any]:
    """Merge the services' documents (keyed by service name) into the gateway's document.

    Paths are united (one path served by two services is an error), components are united
    (two different definitions under one name are an error; identical ones are shared), every
    operationId must stay unique, and the services' bearer schemes are replaced by the gateway's
    own. Operations the gateway protects get the bearer requirement even if a service left it out,
    and every operation documents what the gateway itself answers (429, 502, 503, 504).
    """
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "tags": [],
    }
    if description:
        merged["info"]["description"] = description
    path_owner: dict[str, str] = {}
    operation_owner: dict[str, str] = {}
    component_owners: dict[str, dict[str, str]] = {}
    tag_names: set[str] = set()
    openapi_versions: set[str] = set()

    for service in sorted(docs):
        doc = copy.deepcopy(docs[service])
        openapi_versions.add(str(doc.get("openapi", "3.1.0")))
        bearer_names = _bearer_scheme_names(doc)

        for path, item in doc.get("paths", {}).items():
            if is_internal_path(path):
                continue  # only the services call these; the gateway answers 404
            if path in merged["paths"]:
                raise OpenAPIMergeError(
                    f"path {path!r} is served by both {path_owner[path]!r} and {service!r}"
                )
            for method in _HTTP_METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                operation_id = operation.get("operationId")
                if operation_id:
                    if operation_id in operation_owner:
                        raise OpenAPIMergeError(
                            f"operationId {operation_id!r} is used by both "
                            f"{operation_owner[operation_id]!r} and {service!r}"
                        )
                    operation_owner[operation_id] = service
                security = _rewrite_security(operation.get("security", []), bearer_names)
                if (method.upper(), path) in PUBLIC_OPERATIONS:
                    if security:
                        operation["security"] = security
                else:
                    if {SECURITY_SCHEME_NAME: []} not in security:
                        security.insert(0, {SECURITY_SCHEME_NAME: []})
                    operation["security"] = security
                _add_edge_responses(operation)
            merged["paths"][path] = item
            path_owner[path] = service

        for section, items in doc.get("components", {}).items():
            if section == "securitySchemes":
                items = {k: v for k, v in items.items() if k not in bearer_names}
            target = merged["components"].setdefault(section, {})
            owners = component_owners.setdefault(section, {})
            _merge_named(target, owners, section, items, service)

        for tag in doc.get("tags", []):
            if tag.get("name") not in tag_names:
                tag_names.add(tag.get("name"))
                merged["tags"].append(tag)

    if len(openapi_versions) > 1:
        raise OpenAPIMergeError(f"the services use different OpenAPI versions: {openapi_versions}")
    if openapi_versions:
        merged["openapi"] = openapi_versions.pop()
    existing = merged["components"]["securitySchemes"].get(SECURITY_SCHEME_NAME)
    if existing is not None and existing != SECURITY_SCHEME:
        raise OpenAPIMergeError(f"securitySchemes.{SECURITY_SCHEME_NAME} is reserved")
    merged["components"]["securitySchemes"][SECURITY_SCHEME_NAME] = SECURITY_SCHEME
    merged["components"]["schemas"].setdefault("Problem", PROBLEM_SCHEMA)
    _add_links(merged)
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"] = {
        section: dict(sorted(items.items()))
        for section, items in sorted(merged["components"].items())
    }
    if not merged["tags"]:
        del merged["tags"]
    return merged


class MergedOpenAPI:
    """The merged document of the live upstreams, cached; a failed fetch is retried next time."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstreams: Mapping[str, str],
        *,
        title: str,
        version: str,
        ttl_seconds: float = 300.0,
        own_document: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``own_document``: the gateway's own operations (merged as the ``gateway`` part)."""
        self._own = own_document
        self._client = client
        self._upstreams = dict(upstreams)
        self._title = title
        self._version = version
        self._ttl = ttl_seconds
        self._cached: dict[str, Any] | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._cached = None

    async def _fetch(self, base_url: str) -> dict[str, Any]:
        response = await self._client.get(f"{base_url}/openapi.json")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached_at < self._ttl:
                return self._cached
            names = sorted(self._upstreams)
            results = await asyncio.gather(
                *(self._fetch(self._upstreams[name]) for name in names), return_exceptions=True
            )
            docs: dict[str, dict[str, Any]] = {}
            missing: list[str] = []
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException):
                    _log.warning("openapi_fetch_failed", upstream=name, error=repr(result))
                    missing.append(name)
                else:
                    docs[name] = result
            if not docs:
                raise UpstreamUnavailableError("No service answered with its OpenAPI document.")
            if self._own is not None:
                docs[GATEWAY_PART] = self._own()
            try:
                merged = merge_openapi(docs, title=self._title, version=self._version)
            except OpenAPIMergeError as exc:
                _log.error("openapi_merge_failed", error=str(exc))
                raise BadGatewayError(f"The services' OpenAPI documents conflict: {exc}") from exc
            if missing:
                # Serve what is there, say what is not, and ask again on the next request.
                merged["info"]["x-unavailable-services"] = missing
                return merged
            self._cached = merged
            self._cached_at = time.monotonic()
            return merged
