"""The /v1 reverse proxy: routing, what is forwarded, and how upstream failures look."""

from __future__ import annotations

import httpx
import pytest

ROUTING = [
    ("GET", "/v1/users/me", "auth"),
    ("POST", "/v1/api-keys", "auth"),
    ("POST", "/v1/events", "customers"),
    ("GET", "/v1/customers", "customers"),
    ("GET", "/v1/customers/c-1/features", "customers"),
    ("GET", "/v1/customers/export", "customers"),
    ("POST", "/v1/customers/bulk", "customers"),
    ("GET", "/v1/cohorts/k-1/stats", "customers"),
    ("POST", "/v1/predictions/batch", "prediction"),
    ("GET", "/v1/models/current", "prediction"),
    ("GET", "/v1/alerts", "alerts"),
    ("PUT", "/v1/alert-rules", "alerts"),
    ("DELETE", "/v1/alert-channels/ch-1", "alerts"),
]


@pytest.mark.parametrize(("method", "path", "service"), ROUTING)
async def test_each_prefix_is_served_by_its_upstream(
    gateway, upstreams, bearer, method, path, service
):
    async with gateway(upstreams) as client:
        response = await client.request(method, path, headers=bearer())
    assert response.status_code == 200, response.text
    assert response.json()["service"] == service
    assert response.json()["path"] == path
    assert len(upstreams.calls_to(service)) == 1


async def test_method_path_query_body_and_headers_are_forwarded(gateway, upstreams, bearer):
    headers = {
        **bearer(),
        "Content-Type": "application/json",
        "Idempotency-Key": "idem-1",
        "If-Match": '"v3"',
        "Accept": "application/json",
        "X-Request-ID": "client-chosen-id-123",
        "Cookie": "session=secret",
        "X-Internal-Tenant": "someone-else",
    }
    async with gateway(upstreams) as client:
        response = await client.patch(
            "/v1/customers/c-1?fields=a&fields=b&sort=-churn_probability",
            content=b'{"attributes": {"plan": "gold"}}',
            headers=headers,
        )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "PATCH"
    assert echoed["path"] == "/v1/customers/c-1"
    assert echoed["query"] == "fields=a&fields=b&sort=-churn_probability"
    assert echoed["body"] == '{"attributes": {"plan": "gold"}}'
    sent = echoed["headers"]
    assert sent["authorization"] == headers["Authorization"]
    assert sent["content-type"] == "application/json"
    assert sent["idempotency-key"] == "idem-1"
    assert sent["if-match"] == '"v3"'
    assert sent["x-forwarded-for"] == "203.0.113.7"
    assert "cookie" not in sent
    assert "x-internal-tenant" not in sent
    # The gateway mints the request id, ignores the client's, and answers with the same one.
    rid = response.headers["x-request-id"]
    assert sent["x-request-id"] == rid
    assert rid != "client-chosen-id-123"
    assert response.headers.get_list("x-request-id") == [rid]
    assert response.headers["x-upstream"] == "customers"


async def test_encoded_path_segments_reach_the_upstream_unchanged(gateway, upstreams, bearer):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/customers/a%2Fb%20c", headers=bearer())
    assert response.status_code == 200
    assert response.json()["raw_path"] == "/v1/customers/a%2Fb%20c"


async def test_upstream_status_and_body_pass_through(gateway, upstreams, bearer):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/alerts?echo_status=409", headers=bearer())
    assert response.status_code == 409
    assert response.json()["service"] == "alerts"


@pytest.mark.parametrize("known_length", [True, False], ids=["content-length", "unknown-length"])
async def test_answers_pass_through_whole_whatever_their_framing(
    gateway, upstreams, bearer, known_length
):
    """An answer of known length is relayed without a disconnect watcher, one of unknown
    length (a stream of results) with one: both arrive whole, with their headers."""
    parts = [b"line-%d\n" % i * 2000 for i in range(40)]  # ~0.5 MB in 40 pieces

    class Upstream(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("jwks.json"):
                return await upstreams.handle_async_request(request)

            async def stream():
                for part in parts:
                    yield part

            headers = {"content-type": "text/csv", "x-upstream": "prediction"}
            if known_length:
                headers["content-length"] = str(sum(map(len, parts)))
            return httpx.Response(200, headers=headers, content=stream())

    async with gateway(Upstream()) as client:
        response = await client.get("/v1/predictions/jobs/j-1/result", headers=bearer())
    assert response.status_code == 200
    assert response.content == b"".join(parts)
    assert response.headers["x-upstream"] == "prediction"
    assert ("content-length" in response.headers) is known_length


async def test_forwarded_for_chain_is_kept_only_from_trusted_proxies(gateway, upstreams, bearer):
    spoofed = {**bearer(), "X-Forwarded-For": "198.51.100.1"}
    async with gateway(upstreams) as client:
        untrusted = await client.get("/v1/alerts", headers=spoofed)
    async with gateway(upstreams, trusted_proxies=["203.0.113.0/24"]) as client:
        trusted = await client.get("/v1/alerts", headers=spoofed)
    assert untrusted.json()["headers"]["x-forwarded-for"] == "203.0.113.7"
    assert trusted.json()["headers"]["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"


async def test_unknown_v1_path_is_a_404_problem(gateway, upstreams, bearer):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/nothing-here", headers=bearer())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404
    assert [c for c in upstreams.calls if not c.url.path.endswith("jwks.json")] == []


async def test_unreachable_upstream_is_a_503_problem(gateway, upstreams, bearer):
    upstreams.down.add("customers")
    async with gateway(upstreams) as client:
        response = await client.get("/v1/customers", headers=bearer())
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "customers" in response.json()["detail"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (httpx.ReadTimeout("slow"), 504),
        (httpx.ConnectTimeout("slow"), 504),
        (httpx.RemoteProtocolError("garbage"), 502),
    ],
)
async def test_upstream_failures_map_to_gateway_errors(
    gateway, token_signer, bearer, error, status
):
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    async with gateway(httpx.MockTransport(fail), token_verifier=token_signer.verifier()) as client:
        response = await client.get("/v1/models/current", headers=bearer())
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_body_over_the_limit_is_refused_with_413(gateway, upstreams, bearer):
    async with gateway(upstreams, max_body_bytes=2048) as client:
        response = await client.post("/v1/events", headers=bearer(), content=b"x" * 4096)
    assert response.status_code == 413
    assert upstreams.calls_to("customers") == []


async def test_file_uploads_stream_through_past_the_body_limit(gateway, upstreams, bearer):
    """``POST /v1/predictions/jobs`` is not read into memory first: its body goes to the
    prediction service as it arrives, under its own limit (``max_upload_bytes``)."""

    async def chunks(n: int):
        for i in range(n):
            yield bytes([65 + i % 26]) * 1000

    async with gateway(upstreams, max_body_bytes=2048, max_upload_bytes=20_000) as client:
        response = await client.post(
            "/v1/predictions/jobs",
            headers={**bearer(), "Content-Type": "text/csv"},
            content=chunks(12),
        )
        assert response.status_code == 200, response.text
        assert response.json()["body"] == "".join(chr(65 + i % 26) * 1000 for i in range(12))
        [call] = upstreams.calls_to("prediction")
        assert not isinstance(call.stream, httpx.ByteStream)  # an iterator, not one buffer
        assert call.headers["content-type"] == "text/csv"

        too_big = await client.post(
            "/v1/predictions/jobs",
            headers={**bearer(), "Content-Type": "text/csv"},
            content=chunks(30),
        )
        assert too_big.status_code == 413
        assert too_big.headers["content-type"].startswith("application/problem+json")
        declared = await client.post(
            "/v1/predictions/jobs", headers=bearer(), content=b"x" * 20_001
        )
        assert declared.status_code == 413
        # Every other path keeps the ordinary limit.
        other = await client.post("/v1/predictions/batch", headers=bearer(), content=b"x" * 4096)
        assert other.status_code == 413


@pytest.mark.parametrize(
    "path", ["/v1/predictions/batch", "/v2/models/churn/infer", "/invocations"]
)
async def test_scoring_bodies_stream_through_within_the_body_limit(
    gateway, upstreams, bearer, path
):
    """Scoring bodies go to the prediction service as they arrive (never gathered nor parsed
    at the edge), under the gateway's ordinary body limit."""

    async def chunks(n: int):
        for i in range(n):
            yield bytes([65 + i]) * 1000

    async with gateway(upstreams, max_body_bytes=4096) as client:
        response = await client.post(
            path, headers={**bearer(), "Content-Type": "application/json"}, content=chunks(3)
        )
        [call] = upstreams.calls_to("prediction")
        assert call.url.path == path
        assert not isinstance(call.stream, httpx.ByteStream)  # an iterator, not one buffer
        if path.startswith("/v1/"):  # the fake upstream reads and echoes /v1 requests only
            assert response.status_code == 200, response.text
            assert response.json()["body"] == "A" * 1000 + "B" * 1000 + "C" * 1000
            too_big = await client.post(path, headers=bearer(), content=chunks(5))
            assert too_big.status_code == 413
        declared = await client.post(path, headers=bearer(), content=b"x" * 4097)
        # Refused at the edge in the caller's error form: a problem, the Open Inference
        # Protocol's {"error"}, or MLflow's 400 BAD_REQUEST.
        if path.startswith("/v1/"):
            assert declared.status_code == 413
            assert declared.headers["content-type"].startswith("application/problem+json")
        elif path.startswith("/v2/"):
            assert declared.status_code == 413
            assert "4096 bytes" in declared.json()["error"]
        else:
            assert declared.status_code == 400
            assert declared.json()["error_code"] == "BAD_REQUEST"
            assert "4096 bytes" in declared.json()["message"]


async def test_a_filter_job_passes_through_and_its_customer_pages_stay_internal(
    gateway, upstreams, bearer
):
    """A prediction job over a customer filter is JSON on the upload path: it reaches the
    prediction service as sent; the customers' scoring inputs it reads are not public."""
    body = b'{"customers": {"risk_level": ["high"], "attributes": {"plan": "gold"}}}'
    async with gateway(upstreams) as client:
        response = await client.post(
            "/v1/predictions/jobs",
            headers={**bearer(), "Content-Type": "application/json"},
            content=body,
        )
        assert response.status_code == 200, response.text
        assert response.json()["body"] == body.decode()
        [call] = upstreams.calls_to("prediction")
        assert call.headers["content-type"] == "application/json"

        internal = await client.post(
            "/v1/internal/scoring-inputs", headers=bearer(), json={"filter": {}}
        )
        assert internal.status_code == 404
        assert upstreams.calls_to("customers") == []
