"""Users of a tenant: creation, listing and role changes under the permission rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from churn_auth.main import create_app

PASSWORD = "correct horse battery staple"
PROBLEM_JSON = "application/problem+json"

MakeTenant = Callable[..., Any]


class TestCreate:
    async def test_owner_creates_every_role(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()

        for role in ("owner", "admin", "analyst", "viewer"):
            response = await client.post(
                "/v1/users",
                json={"email": f"new-{role}@acme.example.com", "password": PASSWORD, "role": role},
                headers=acme.owner,
            )
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["role"] == role
            assert body["active"] is True
            assert "password" not in body
            assert "password_hash" not in body

        me = await client.get("/v1/users/me", headers=(await acme.add_user("x@a.com", "viewer"))[1])
        assert me.json()["tenant_id"] == acme.id

    async def test_admin_creates_analysts_and_viewers_only(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, admin = await acme.add_user("admin@acme.example.com", "admin")

        allowed = [
            await client.post(
                "/v1/users",
                json={"email": f"{role}@acme.example.com", "password": PASSWORD, "role": role},
                headers=admin,
            )
            for role in ("analyst", "viewer")
        ]
        refused = [
            await client.post(
                "/v1/users",
                json={"email": f"{role}2@acme.example.com", "password": PASSWORD, "role": role},
                headers=admin,
            )
            for role in ("admin", "owner")
        ]

        assert [r.status_code for r in allowed] == [201, 201]
        assert [r.status_code for r in refused] == [403, 403]
        assert refused[0].headers["content-type"].startswith(PROBLEM_JSON)

    async def test_analysts_and_viewers_cannot_create_users(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, analyst = await acme.add_user("analyst@acme.example.com", "analyst")
        _, viewer = await acme.add_user("viewer@acme.example.com", "viewer")

        for headers in (analyst, viewer):
            response = await client.post(
                "/v1/users",
                json={"email": "new@acme.example.com", "password": PASSWORD, "role": "viewer"},
                headers=headers,
            )
            assert response.status_code == 403

    async def test_refused_callers_get_403_before_validation(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, viewer = await acme.add_user("viewer@acme.example.com", "viewer")

        response = await client.post(
            "/v1/users", json={"email": "x", "password": "x", "role": "owner"}, headers=viewer
        )

        assert response.status_code == 403

    async def test_duplicate_email_is_409_and_bad_bodies_are_4xx(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        await acme.add_user("dup@acme.example.com", "viewer")

        dup = await client.post(
            "/v1/users",
            json={"email": "DUP@acme.example.com", "password": PASSWORD, "role": "viewer"},
            headers=acme.owner,
        )
        bad_role = await client.post(
            "/v1/users",
            json={"email": "r@acme.example.com", "password": PASSWORD, "role": "superuser"},
            headers=acme.owner,
        )
        bad_email = await client.post(
            "/v1/users",
            json={"email": "nope", "password": PASSWORD, "role": "viewer"},
            headers=acme.owner,
        )
        overlong = await client.post(
            "/v1/users",
            json={"email": "a" * 400 + "@x.com", "password": PASSWORD, "role": "viewer"},
            headers=acme.owner,
        )
        wrong_type = await client.post(
            "/v1/users", content=b"email=x", headers={**acme.owner, "Content-Type": "text/plain"}
        )

        assert dup.status_code == 409
        assert bad_role.status_code == 422
        assert bad_email.status_code == 422
        assert overlong.status_code == 422
        assert 400 <= wrong_type.status_code < 500
        for response in (dup, bad_role, bad_email, overlong, wrong_type):
            assert response.headers["content-type"].startswith(PROBLEM_JSON)


class TestList:
    async def test_paginates_and_excludes_other_tenants(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant("Acme")
        other = await make_tenant("Other")
        for i in range(4):
            await client.post(
                "/v1/users",
                json={"email": f"u{i}@acme.example.com", "password": PASSWORD, "role": "viewer"},
                headers=acme.owner,
            )
        await other.add_user("spy@other.example.com", "viewer")

        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/v1/users", params=params, headers=acme.owner)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [item["email"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert pages == 3
        assert sorted(seen) == sorted(
            [acme.owner_email] + [f"u{i}@acme.example.com" for i in range(4)]
        )
        assert not any("other" in email for email in seen)

    async def test_only_admins_and_owners_list(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, admin = await acme.add_user("admin@acme.example.com", "admin")
        _, analyst = await acme.add_user("analyst@acme.example.com", "analyst")
        _, viewer = await acme.add_user("viewer@acme.example.com", "viewer")

        statuses = [
            (await client.get("/v1/users", headers=h)).status_code
            for h in (acme.owner, admin, analyst, viewer)
        ]
        bad_cursor = await client.get("/v1/users", params={"cursor": "!!"}, headers=acme.owner)

        assert statuses == [200, 200, 403, 403]
        assert bad_cursor.status_code == 400


class TestUpdate:
    async def test_nobody_changes_their_own_role(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        admin_id, admin = await acme.add_user("admin@acme.example.com", "admin")
        viewer_id, viewer = await acme.add_user("viewer@acme.example.com", "viewer")

        admin_up = await client.patch(
            f"/v1/users/{admin_id}", json={"role": "owner"}, headers=admin
        )
        viewer_up = await client.patch(
            f"/v1/users/{viewer_id}", json={"role": "analyst"}, headers=viewer
        )
        owner_down = await client.patch(
            f"/v1/users/{acme.owner_id}", json={"role": "admin"}, headers=acme.owner
        )

        assert admin_up.status_code == 403
        assert viewer_up.status_code == 403
        assert owner_down.status_code == 403
        me = await client.get("/v1/users/me", headers=admin)
        assert me.json()["role"] == "admin"

    async def test_admin_cannot_touch_owners_or_admins(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, admin = await acme.add_user("admin@acme.example.com", "admin")
        other_admin_id, _ = await acme.add_user("admin2@acme.example.com", "admin")
        analyst_id, _ = await acme.add_user("analyst@acme.example.com", "analyst")

        attempts = [
            await client.patch(f"/v1/users/{acme.owner_id}", json=body, headers=admin)
            for body in ({"active": False}, {"role": "viewer"})
        ] + [
            await client.patch(f"/v1/users/{other_admin_id}", json=body, headers=admin)
            for body in ({"active": False}, {"role": "viewer"})
        ]
        promote = await client.patch(
            f"/v1/users/{analyst_id}", json={"role": "admin"}, headers=admin
        )
        demote = await client.patch(
            f"/v1/users/{analyst_id}", json={"role": "viewer"}, headers=admin
        )

        assert [r.status_code for r in attempts] == [403, 403, 403, 403]
        assert promote.status_code == 403
        assert demote.status_code == 200
        assert demote.json()["role"] == "viewer"

    async def test_owner_manages_admins_and_owners(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        admin_id, _ = await acme.add_user("admin@acme.example.com", "admin")
        second_owner_id, second_owner = await acme.add_user("o2@acme.example.com", "owner")

        promote = await client.patch(
            f"/v1/users/{admin_id}", json={"role": "owner"}, headers=acme.owner
        )
        demote_owner = await client.patch(
            f"/v1/users/{second_owner_id}", json={"role": "admin"}, headers=acme.owner
        )
        # The demoted owner is an admin now (the stored role counts, not the token's).
        strike_back = await client.patch(
            f"/v1/users/{acme.owner_id}", json={"role": "viewer"}, headers=second_owner
        )

        assert promote.status_code == 200
        assert promote.json()["role"] == "owner"
        assert demote_owner.status_code == 200
        assert strike_back.status_code == 403

    async def test_last_active_owner_is_protected(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        _, admin = await acme.add_user("admin@acme.example.com", "admin")

        for body in ({"role": "admin"}, {"active": False}):
            by_self = await client.patch(
                f"/v1/users/{acme.owner_id}", json=body, headers=acme.owner
            )
            by_admin = await client.patch(f"/v1/users/{acme.owner_id}", json=body, headers=admin)
            assert by_self.status_code == 403
            assert by_admin.status_code == 403
        listed = (await client.get("/v1/users", headers=acme.owner)).json()["items"]
        owners = [u for u in listed if u["role"] == "owner" and u["active"]]
        assert [u["id"] for u in owners] == [acme.owner_id]

    async def test_another_tenants_user_is_404(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant("Acme")
        other = await make_tenant("Other")
        victim_id, _ = await acme.add_user("victim@acme.example.com", "viewer")

        response = await client.patch(
            f"/v1/users/{victim_id}", json={"active": False}, headers=other.owner
        )
        unknown = await client.patch(
            "/v1/users/no-such-user", json={"active": False}, headers=other.owner
        )

        assert response.status_code == 404
        assert unknown.status_code == 404
        assert response.json()["detail"] == unknown.json()["detail"]
        still = await acme.login("victim@acme.example.com")
        assert still["access_token"]


class TestDeactivation:
    async def test_deactivated_user_is_locked_out_at_once(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        user_id, headers = await acme.add_user("leaver@acme.example.com", "analyst")
        tokens = await acme.login("leaver@acme.example.com")

        # Strict booleans: 0 and "false" are refused, not read as false.
        lax = [
            await client.patch(f"/v1/users/{user_id}", json={"active": v}, headers=acme.owner)
            for v in (0, "false")
        ]
        assert [r.status_code for r in lax] == [422, 422]
        off = await client.patch(f"/v1/users/{user_id}", json={"active": False}, headers=acme.owner)
        login = await client.post(
            "/v1/auth/login", json={"email": "leaver@acme.example.com", "password": PASSWORD}
        )
        refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        me = await client.get("/v1/users/me", headers=headers)

        assert off.status_code == 200
        assert off.json()["active"] is False
        assert login.status_code == 401
        assert refresh.status_code == 401
        assert me.status_code == 401
        assert me.headers["content-type"].startswith(PROBLEM_JSON)

        on = await client.patch(f"/v1/users/{user_id}", json={"active": True}, headers=acme.owner)
        fresh = await acme.login("leaver@acme.example.com")
        again = await client.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        )
        old_again = await client.get("/v1/users/me", headers=headers)
        assert on.status_code == 200
        assert again.status_code == 200
        assert old_again.status_code == 401


class TestProfile:
    async def test_update_own_email(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        await acme.add_user("taken@acme.example.com", "viewer")

        changed = await client.patch(
            "/v1/users/me",
            json={"email": "New@acme.example.com", "current_password": PASSWORD},
            headers=acme.owner,
        )
        taken = await client.patch(
            "/v1/users/me",
            json={"email": "taken@acme.example.com", "current_password": PASSWORD},
            headers=acme.owner,
        )
        role = await client.patch("/v1/users/me", json={"role": "admin"}, headers=acme.owner)

        assert changed.status_code == 200
        assert changed.json()["email"] == "new@acme.example.com"
        assert taken.status_code == 409
        assert role.status_code == 422
        assert await acme.login("new@acme.example.com")

    async def test_an_access_token_alone_cannot_change_the_email(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()

        missing = await client.patch(
            "/v1/users/me", json={"email": "thief@example.com"}, headers=acme.owner
        )
        wrong = await client.patch(
            "/v1/users/me",
            json={"email": "thief@example.com", "current_password": "a guess"},
            headers=acme.owner,
        )
        me = await client.get("/v1/users/me", headers=acme.owner)

        assert missing.status_code == 422
        assert missing.headers["content-type"].startswith(PROBLEM_JSON)
        assert wrong.status_code == 403
        assert wrong.json()["type"].endswith("/wrong-password")
        assert me.json()["email"] == acme.owner_email

    async def test_wrong_current_passwords_are_throttled_like_sign_ins(
        self, make_settings: Callable[..., Any], in_process: Callable[..., Any]
    ) -> None:
        app = create_app(make_settings(lockout_threshold=2))
        async with in_process(app) as http:
            await http.post(
                "/v1/auth/register",
                json={"tenant_name": "Acme", "email": "o@acme.example.com", "password": PASSWORD},
            )
            tokens = (
                await http.post(
                    "/v1/auth/login", json={"email": "o@acme.example.com", "password": PASSWORD}
                )
            ).json()
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            guesses = [
                await http.patch(
                    "/v1/users/me",
                    json={"email": "thief@example.com", "current_password": f"guess {n}"},
                    headers=headers,
                )
                for n in range(3)
            ]
            right = await http.patch(
                "/v1/users/me",
                json={"email": "thief@example.com", "current_password": PASSWORD},
                headers=headers,
            )

        assert [g.status_code for g in guesses] == [403, 403, 429]
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) >= 1


class TestPasswordChange:
    async def test_revokes_other_sessions_keeps_own(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()
        mine = await acme.login(acme.owner_email)
        other = await acme.login(acme.owner_email)
        new_password = "a much better passphrase 42"

        response = await client.post(
            "/v1/users/me/password",
            json={
                "old_password": PASSWORD,
                "new_password": new_password,
                "keep_refresh_token": mine["refresh_token"],
            },
            headers={"Authorization": f"Bearer {mine['access_token']}"},
        )
        other_refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
        original_refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": acme.owner_tokens["refresh_token"]}
        )
        mine_refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]}
        )
        old_login = await client.post(
            "/v1/auth/login", json={"email": acme.owner_email, "password": PASSWORD}
        )

        assert response.status_code == 204
        assert other_refresh.status_code == 401
        assert original_refresh.status_code == 401
        assert mine_refresh.status_code == 200
        assert old_login.status_code == 401
        assert await acme.login(acme.owner_email, new_password)

    async def test_without_keep_every_session_is_revoked(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()

        response = await client.post(
            "/v1/users/me/password",
            json={"old_password": PASSWORD, "new_password": "another fine passphrase"},
            headers=acme.owner,
        )
        refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": acme.owner_tokens["refresh_token"]}
        )

        assert response.status_code == 204
        assert refresh.status_code == 401

    async def test_wrong_old_password_and_weak_new_ones(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()

        wrong = await client.post(
            "/v1/users/me/password",
            json={"old_password": "not my password", "new_password": "another fine passphrase"},
            headers=acme.owner,
        )
        common = await client.post(
            "/v1/users/me/password",
            json={"old_password": PASSWORD, "new_password": "Password123"},
            headers=acme.owner,
        )
        short = await client.post(
            "/v1/users/me/password",
            json={"old_password": PASSWORD, "new_password": "short1!"},
            headers=acme.owner,
        )

        assert wrong.status_code == 403
        assert common.status_code == 422
        assert short.status_code == 422
        assert await acme.login(acme.owner_email)


class TestPasswordPolicy:
    async def test_common_and_short_passwords_are_422(
        self, client: httpx.AsyncClient, make_tenant: MakeTenant
    ) -> None:
        acme = await make_tenant()

        responses = [
            await client.post(
                "/v1/auth/register",
                json={"tenant_name": "T", "email": f"p{i}@example.com", "password": password},
            )
            for i, password in enumerate(
                ["1234567890", "qwertyuiop", "Password123!", "iloveyou123", "aaaaaaaaaaaa", "short"]
            )
        ]
        created = await client.post(
            "/v1/users",
            json={"email": "weak@acme.example.com", "password": "welcome123", "role": "viewer"},
            headers=acme.owner,
        )

        assert [r.status_code for r in responses] == [422] * 6
        assert all(r.headers["content-type"].startswith(PROBLEM_JSON) for r in responses)
        assert any("common" in e["msg"] for e in responses[0].json()["errors"]), responses[0].json()
        assert created.status_code == 422
