"""CORS at the edge: how origins are configured, one layer per path, preflights without tokens.

Requests go through the whole gateway app over HTTP (httpx), and headers are counted: a
browser refuses a response with ``Access-Control-Allow-Origin`` twice.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from churn_gateway.config import Settings

APP = "https://app.example.com"
ADMIN = "https://admin.example.com"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def _allow_origin(response) -> list[str]:
    return response.headers.get_list("access-control-allow-origin")


class TestSettings:
    @pytest.mark.parametrize(
        "value",
        [
            f"{APP},{ADMIN}",
            f" {APP} , {ADMIN}/ ",
            f'["{APP}", "{ADMIN}"]',
        ],
    )
    def test_origins_are_a_comma_separated_or_json_list(self, monkeypatch, value):
        monkeypatch.setenv("CHURN_GATEWAY_CORS_ORIGINS", value)

        assert Settings().cors_origins == [APP, ADMIN]

    def test_credentials_are_off_by_default(self, monkeypatch):
        monkeypatch.setenv("CHURN_GATEWAY_CORS_ORIGINS", APP)

        assert Settings().cors_allow_credentials is False

    @pytest.mark.parametrize(("origins", "credentials"), [("app.example.com", False), ("*", True)])
    def test_a_wrong_origin_or_credentials_for_everyone_stop_start_up(
        self, monkeypatch, origins, credentials
    ):
        monkeypatch.setenv("CHURN_GATEWAY_CORS_ORIGINS", origins)
        monkeypatch.setenv("CHURN_GATEWAY_CORS_ALLOW_CREDENTIALS", str(credentials).lower())

        with pytest.raises(ValidationError):
            Settings()


class TestWithCors:
    async def test_socketio_polling_carries_one_allow_origin(self, gateway, upstreams):
        async with gateway(upstreams, cors_origins=[APP]) as client:
            response = await client.get(
                "/socket.io/", params={"EIO": "4", "transport": "polling"}, headers={"Origin": APP}
            )

        assert response.status_code == 200, response.text
        assert _allow_origin(response) == [APP]
        assert response.headers.get_list("access-control-allow-credentials") == []

    async def test_socketio_refuses_an_origin_that_is_not_listed(self, gateway, upstreams):
        async with gateway(upstreams, cors_origins=[APP]) as client:
            response = await client.get(
                "/socket.io/",
                params={"EIO": "4", "transport": "polling"},
                headers={"Origin": "https://evil.example"},
            )

        assert response.status_code == 400
        assert _allow_origin(response) == []

    async def test_a_rest_response_carries_one_allow_origin(self, gateway, upstreams, bearer):
        async with gateway(upstreams, cors_origins=[APP]) as client:
            response = await client.get("/v1/customers", headers={**bearer(), "Origin": APP})

        assert response.status_code == 200
        assert _allow_origin(response) == [APP]
        assert response.headers.get_list("access-control-allow-credentials") == []
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()

    async def test_credentials_are_allowed_when_enabled(self, gateway, upstreams, bearer):
        async with gateway(upstreams, cors_origins=[APP], cors_allow_credentials=True) as client:
            rest = await client.get("/v1/customers", headers={**bearer(), "Origin": APP})
            feed = await client.get(
                "/socket.io/", params={"EIO": "4", "transport": "polling"}, headers={"Origin": APP}
            )

        assert rest.headers.get_list("access-control-allow-credentials") == ["true"]
        assert feed.headers.get_list("access-control-allow-credentials") == ["true"]
        assert _allow_origin(feed) == [APP]

    async def test_a_preflight_is_answered_without_a_token(self, gateway, upstreams):
        async with gateway(upstreams, cors_origins=[APP]) as client:
            response = await client.options("/v1/customers/c-1", headers=PREFLIGHT)

        assert response.status_code == 200
        assert _allow_origin(response) == [APP]
        assert "PATCH" in response.headers["access-control-allow-methods"]
        assert upstreams.calls_to("customers") == []


class TestWithoutCors:
    async def test_a_preflight_never_needs_a_token(self, gateway, upstreams):
        async with gateway(upstreams) as client:
            response = await client.options("/v1/customers/c-1", headers=PREFLIGHT)

        assert response.status_code == 204
        assert _allow_origin(response) == []
        assert upstreams.calls_to("customers") == []

    async def test_a_plain_options_request_still_needs_a_token(self, gateway, upstreams):
        async with gateway(upstreams) as client:
            response = await client.options("/v1/customers/c-1")

        assert response.status_code == 401
