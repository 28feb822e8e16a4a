"""RFC 9457 problem details: one error base class carrying its HTTP status, one renderer."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from churn_shared.logging import get_logger, request_id_var

PROBLEM_JSON = "application/problem+json"
_log = get_logger(__name__)


class ProblemError(Exception):
    """A domain error that knows how it is shown to a client."""

    status: int = 500
    title: str = "Internal Server Error"
    type_slug: str = "internal"
    #: Commit the request's transaction before this error propagates (default: roll back).
    keeps_changes: bool = False

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self._headers = dict(headers) if headers else None

    @property
    def headers(self) -> dict[str, str] | None:
        """Response headers the problem carries (``Retry-After`` …)."""
        return self._headers


class BadRequestError(ProblemError):
    status, title, type_slug = 400, "Bad Request", "bad-request"


class UnauthorizedError(ProblemError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class ForbiddenError(ProblemError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFoundError(ProblemError):
    status, title, type_slug = 404, "Not Found", "not-found"


class ConflictError(ProblemError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLargeError(ProblemError):
    status, title, type_slug = 413, "Payload Too Large", "payload-too-large"


class UnprocessableError(ProblemError):
    status, title, type_slug = 422, "Unprocessable Content", "validation"


class TooManyRequestsError(ProblemError):
    status, title, type_slug = 429, "Too Many Requests", "rate-limited"


class ServiceUnavailableError(ProblemError):
    status, title, type_slug = 503, "Service Unavailable", "unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    type_slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://churn.dev/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        errors.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return errors


def _body_not_json(exc: RequestValidationError) -> bool:
    """FastAPI hands a JSON body route the raw bytes when the ``Content-Type`` is missing or
    not JSON; validating them is what fails, and the answer to that is 415, not 422."""
    return any(
        err.get("loc", ())[:1] == ("body",) and isinstance(err.get("input"), bytes | bytearray)
        for err in exc.errors()
    )


def _accepted_media(method: str) -> dict[str, str]:
    """RFC 9110 §15.5.16: say which media type a 415 would have accepted."""
    if method == "PATCH":
        return {"Accept-Patch": "application/json"}
    if method == "POST":
        return {"Accept-Post": "application/json"}
    return {}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (``Allow`` of a 405;
    Starlette's own names only the first route that matched the path)."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if not route_methods:
            continue
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error, validation errors included, as ``application/problem+json``."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            exc.type_slug,
            request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if _body_not_json(exc):
            return problem_response(
                415,
                "Unsupported Media Type",
                "Send the request body as JSON (Content-Type: application/json).",
                "unsupported-media-type",
                request.url.path,
                headers=_accepted_media(request.method),
            )
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(
                400,
                "Bad Request",
                "The request body is not valid JSON.",
                "malformed-json",
                request.url.path,
                errors=errors,
            )
        return problem_response(
            422,
            "Unprocessable Content",
            "The request does not match the expected shape.",
            "validation",
            request.url.path,
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            exc.status_code, "http"
        )
        title = HTTPStatus(exc.status_code).phrase
        return problem_response(
            exc.status_code,
            title,
            detail,
            slug,
            request.url.path,
            headers=headers,
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled_error", path=request.url.path)
        return problem_response(
            500,
            "Internal Server Error",
            "An unexpected error occurred.",
            "internal",
            request.url.path,
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def problem_doc(description: str) -> dict[str, Any]:
    """The OpenAPI entry of a problem+json answer, for the statuses only some operations send
    (``responses={409: problem_doc("The customer exists already")}``)."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: problem_doc(title)
    for code, title in (
        (400, "Malformed request"),
        (401, "Missing or invalid credentials"),
        (403, "Not allowed"),
        (404, "Not found"),
        (413, "Payload too large"),
        (415, "Body is not JSON"),
        (422, "Validation error"),
    )
}
