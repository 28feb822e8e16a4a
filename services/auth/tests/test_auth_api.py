"""The auth service over HTTP, against a real database (SQLite, and MariaDB when configured)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from churn_auth.main import create_app
from churn_auth.models import RefreshToken
from churn_shared.db import unit_of_work, utcnow
from churn_shared.errors import UnauthorizedError
from churn_shared.security import TokenVerifier

PROBLEM_JSON = "application/problem+json"
PASSWORD = "correct horse battery staple"  # the one the conftest fixtures register with

Register = Callable[..., Any]
Login = Callable[..., Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _register_and_login(http: httpx.AsyncClient) -> dict[str, Any]:
    await http.post(
        "/v1/auth/register",
        json={"tenant_name": "Acme", "email": "x@example.com", "password": PASSWORD},
    )
    response = await http.post(
        "/v1/auth/login", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _age_rotations(app: Any, *, seconds: float) -> None:
    """Pretend every rotation so far happened ``seconds`` ago."""
    async with unit_of_work(app.state.session_factory) as session:
        await session.exec(
            sa.update(RefreshToken)
            .where(sa.column("used_at").is_not(None))
            .values(used_at=utcnow() - timedelta(seconds=seconds))
        )


class TestRegister:
    async def test_creates_tenant_and_owner(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": "Owner@Example.COM", "password": PASSWORD},
        )

        assert response.status_code == 201
        body = response.json()
        assert body["email"] == "owner@example.com"
        assert body["role"] == "owner"
        assert body["tenant_id"]
        assert body["user_id"]

    async def test_duplicate_email_is_409_problem(
        self, client: httpx.AsyncClient, register: Register
    ) -> None:
        await register(email="dup@example.com")

        response = await client.post(
            "/v1/auth/register",
            json={"tenant_name": "Other", "email": "DUP@example.com", "password": PASSWORD},
        )

        assert response.status_code == 409
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["status"] == 409

    async def test_invalid_email_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": "not-an-email", "password": PASSWORD},
        )

        assert response.status_code == 422
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert any(e["loc"][-1] == "email" for e in response.json()["errors"])

    async def test_short_password_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": "a@example.com", "password": "short"},
        )

        assert response.status_code == 422

    async def test_role_cannot_be_chosen(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            json={
                "tenant_name": "Acme",
                "email": "a@example.com",
                "password": PASSWORD,
                "role": "admin",
            },
        )

        assert response.status_code == 422

    async def test_malformed_json_is_400_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            content=b'{"tenant_name": "Acme", "email": ',
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 400
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["status"] == 400


class TestLogin:
    async def test_register_login_then_me(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        registered = await register(email="me@example.com", tenant_name="Me Corp")

        tokens = await login(email="ME@example.com")
        response = await client.get("/v1/users/me", headers=bearer(tokens["access_token"]))

        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 900
        assert response.status_code == 200
        me = response.json()
        assert me["id"] == registered["user_id"]
        assert me["tenant_id"] == registered["tenant_id"]
        assert me["tenant_name"] == "Me Corp"
        assert me["email"] == "me@example.com"
        assert me["role"] == "owner"
        assert me["created_at"]

    async def test_wrong_password_and_unknown_email_answer_alike(
        self, client: httpx.AsyncClient, register: Register
    ) -> None:
        await register(email="real@example.com")

        wrong = await client.post(
            "/v1/auth/login", json={"email": "real@example.com", "password": "wrong password!"}
        )
        unknown = await client.post(
            "/v1/auth/login", json={"email": "ghost@example.com", "password": PASSWORD}
        )

        assert wrong.status_code == unknown.status_code == 401
        assert wrong.headers["content-type"].startswith(PROBLEM_JSON)
        wrong_body, unknown_body = wrong.json(), unknown.json()
        assert set(wrong_body) == set(unknown_body)
        for field in ("type", "title", "status", "detail"):
            assert wrong_body[field] == unknown_body[field]


class TestRefresh:
    async def test_rotates_the_refresh_token(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        first = await login()

        response = await client.post(
            "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )

        assert response.status_code == 200
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        me = await client.get("/v1/users/me", headers=bearer(second["access_token"]))
        assert me.status_code == 200
        third = await client.post(
            "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert third.status_code == 200

    async def test_reusing_a_rotated_token_after_the_grace_revokes_the_family(
        self, make_settings: Callable[..., Any], in_process: Callable[..., Any]
    ) -> None:
        app = create_app(make_settings())
        async with in_process(app) as http:
            first = await _register_and_login(http)
            rotated = await http.post(
                "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
            newest = rotated.json()["refresh_token"]
            await _age_rotations(app, seconds=11)  # the grace window is 10 s by default

            reuse = await http.post(
                "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
            after = await http.post("/v1/auth/refresh", json={"refresh_token": newest})

        assert reuse.status_code == 401
        assert reuse.headers["content-type"].startswith(PROBLEM_JSON)
        assert after.status_code == 401

    async def test_a_token_rotated_within_the_grace_answers_the_same_pair(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        first = await login()
        rotated = await client.post(
            "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )

        again = await client.post(
            "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        onwards = await client.post(
            "/v1/auth/refresh", json={"refresh_token": again.json()["refresh_token"]}
        )

        assert again.status_code == 200
        assert again.json()["refresh_token"] == rotated.json()["refresh_token"]
        assert again.json()["access_token"] == rotated.json()["access_token"]
        assert onwards.status_code == 200

    async def test_three_tabs_refreshing_at_once_all_stay_signed_in(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        tokens = await login()
        body = {"refresh_token": tokens["refresh_token"]}

        responses = await asyncio.gather(
            *(client.post("/v1/auth/refresh", json=body) for _ in range(3))
        )

        assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
        assert len({r.json()["refresh_token"] for r in responses}) == 1
        newest = responses[0].json()
        me = await client.get("/v1/users/me", headers=bearer(newest["access_token"]))
        onwards = await client.post(
            "/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]}
        )
        assert me.status_code == 200
        assert onwards.status_code == 200

    async def test_a_replay_within_the_grace_after_logout_is_401(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        first = await login()
        rotated = await client.post(
            "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        await client.post(
            "/v1/auth/logout", json={"refresh_token": rotated.json()["refresh_token"]}
        )

        replay = await client.post(
            "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )

        assert replay.status_code == 401

    async def test_reuse_leaves_other_sessions_alone(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        stolen = await login()
        other = await login()
        await client.post("/v1/auth/refresh", json={"refresh_token": stolen["refresh_token"]})

        await client.post("/v1/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
        response = await client.post(
            "/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )

        assert response.status_code == 200

    async def test_without_a_grace_concurrent_reuse_lets_at_most_one_through(
        self, make_settings: Callable[..., Any], in_process: Callable[..., Any]
    ) -> None:
        app = create_app(make_settings(refresh_token_reuse_grace_seconds=0))
        async with in_process(app) as http:
            tokens = await _register_and_login(http)
            body = {"refresh_token": tokens["refresh_token"]}

            responses = await asyncio.gather(
                http.post("/v1/auth/refresh", json=body),
                http.post("/v1/auth/refresh", json=body),
            )

        assert sorted(r.status_code for r in responses) == [200, 401]

    async def test_unknown_refresh_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/auth/refresh", json={"refresh_token": "nope"})

        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM_JSON)

    async def test_expired_refresh_token_is_401(
        self, make_settings: Callable[..., Any], in_process: Callable[..., Any]
    ) -> None:
        app = create_app(make_settings())
        async with in_process(app) as http:
            await http.post(
                "/v1/auth/register",
                json={"tenant_name": "Acme", "email": "x@example.com", "password": PASSWORD},
            )
            login = await http.post(
                "/v1/auth/login", json={"email": "x@example.com", "password": PASSWORD}
            )
            async with unit_of_work(app.state.session_factory) as session:
                await session.exec(
                    sa.update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1))
                )

            response = await http.post(
                "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
            )

        assert response.status_code == 401


class TestLogout:
    async def test_logout_revokes_the_family(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        tokens = await login()
        rotated = (
            await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        ).json()

        response = await client.post(
            "/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]}
        )
        after = await client.post(
            "/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
        )

        assert response.status_code == 204
        assert response.content == b""
        assert after.status_code == 401

    async def test_logout_with_unknown_token_is_204(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/auth/logout", json={"refresh_token": "unknown"})

        assert response.status_code == 204


class TestTokens:
    async def test_access_token_verifies_against_served_jwks(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        registered = await register()
        tokens = await login()

        response = await client.get("/v1/auth/.well-known/jwks.json")
        jwks = response.json()

        async def source() -> dict[str, Any]:
            return jwks

        verifier = TokenVerifier(source, issuer="churn-auth", audience="churn-platform")
        principal = await verifier.verify(tokens["access_token"])
        assert response.status_code == 200
        assert "max-age=60" in response.headers["cache-control"]
        assert principal.subject == registered["user_id"]
        assert principal.tenant_id == registered["tenant_id"]
        assert principal.role == "owner"
        assert principal.token_id

    async def test_numeric_dates_are_whole_seconds(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        tokens = await login()

        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

        for name in ("iat", "nbf", "exp"):
            assert type(claims[name]) is int, (name, claims[name])
        assert claims["exp"] - claims["iat"] == tokens["expires_in"]

    async def test_refresh_token_is_not_an_access_token(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        tokens = await login()

        response = await client.get("/v1/users/me", headers=bearer(tokens["refresh_token"]))

        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM_JSON)

    async def test_me_without_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/users/me")

        assert response.status_code == 401

    async def test_token_of_another_signer_is_401(
        self, client: httpx.AsyncClient, register: Register, token_signer: Any
    ) -> None:
        registered = await register()
        forged = token_signer.issue(registered["tenant_id"], subject=registered["user_id"])

        response = await client.get("/v1/users/me", headers=bearer(forged))

        assert response.status_code == 401

    async def test_shared_verifier_rejects_refresh_token(
        self, client: httpx.AsyncClient, register: Register, login: Login
    ) -> None:
        await register()
        tokens = await login()
        jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()

        async def source() -> dict[str, Any]:
            return jwks

        verifier = TokenVerifier(source, issuer="churn-auth", audience="churn-platform")
        with pytest.raises(UnauthorizedError):
            await verifier.verify(tokens["refresh_token"])


class TestLifecycle:
    async def test_signing_key_survives_restart(
        self, make_settings: Callable[..., Any], in_process: Callable[..., Any]
    ) -> None:
        async with in_process(create_app(make_settings())) as first:
            before = (await first.get("/v1/auth/.well-known/jwks.json")).json()
        async with in_process(create_app(make_settings())) as second:
            after = (await second.get("/v1/auth/.well-known/jwks.json")).json()
            ready = await second.get("/readyz")

        assert len(before["keys"]) == 1
        assert before == after
        assert before["keys"][0]["kty"] == "OKP"
        assert before["keys"][0]["crv"] == "Ed25519"
        assert "d" not in before["keys"][0]
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "signing_key": "ok"}
