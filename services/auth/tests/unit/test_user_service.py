"""The tenant's users as managed by owners and admins (docs/permissions.md): role changes,
deactivation and the last-owner rule, on in-memory repositories."""

from __future__ import annotations

import pytest

from churn_auth.exceptions import LastOwnerError, RoleNotAllowedError, UserNotFoundError
from churn_auth.models import User
from churn_auth.schemas import UserUpdate
from churn_shared.security import Principal


def principal(user: User) -> Principal:
    return Principal(subject=user.id, tenant_id=user.tenant_id, role=user.role)


async def test_an_owner_promotes_an_analyst_to_admin(user_service, add_user, uow):
    owner, analyst = add_user("owner"), add_user("analyst")

    async with uow:
        read = await user_service.update_user(
            principal(owner), analyst.id, UserUpdate(role="admin")
        )

    assert read.role == "admin"
    assert uow.users.rows[analyst.id].role == "admin"
    assert uow.users.saved == [analyst.id]
    assert (uow.commits, uow.rollbacks) == (1, 0)


async def test_an_admin_cannot_grant_the_owner_role(user_service, add_user, uow):
    admin, analyst = add_user("admin"), add_user("analyst")

    with pytest.raises(RoleNotAllowedError):
        async with uow:
            await user_service.update_user(principal(admin), analyst.id, UserUpdate(role="owner"))

    assert uow.users.rows[analyst.id].role == "analyst"
    assert uow.users.saved == []
    assert (uow.commits, uow.rollbacks) == (0, 1)


async def test_nobody_changes_their_own_role(user_service, add_user, uow):
    owner = add_user("owner")
    add_user("owner")

    with pytest.raises(RoleNotAllowedError, match="own role"):
        await user_service.update_user(principal(owner), owner.id, UserUpdate(role="viewer"))

    assert uow.users.rows[owner.id].role == "owner"


async def test_a_user_of_another_tenant_is_not_found(user_service, add_user):
    owner = add_user("owner", tenant="t-1")
    stranger = add_user("analyst", tenant="t-2")

    with pytest.raises(UserNotFoundError):
        await user_service.update_user(principal(owner), stranger.id, UserUpdate(role="viewer"))


async def test_deactivating_a_user_revokes_their_refresh_tokens(
    user_service, add_user, live_token, uow
):
    owner, analyst = add_user("owner"), add_user("analyst")
    token = live_token(analyst)
    owners_token = live_token(owner)

    read = await user_service.update_user(principal(owner), analyst.id, UserUpdate(active=False))

    assert read.active is False
    assert uow.users.rows[analyst.id].tokens_valid_after is not None
    assert token.revoked_at is not None
    assert owners_token.revoked_at is None


async def test_an_owner_may_demote_another_owner_while_one_remains(user_service, add_user, uow):
    first, second = add_user("owner"), add_user("owner")

    read = await user_service.update_user(principal(first), second.id, UserUpdate(role="admin"))

    assert read.role == "admin"
    assert list(await uow.users.lock_active_owners("t-1")) == [first.id]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(user_service, add_user, uow):
    first, second = add_user("owner"), add_user("owner")

    def second_demoted_first_meanwhile() -> None:
        first.role = "admin"

    uow.users.before_lock = second_demoted_first_meanwhile

    with pytest.raises(LastOwnerError):
        async with uow:
            await user_service.update_user(principal(first), second.id, UserUpdate(role="admin"))

    assert uow.users.rows[second.id].role == "owner"
    assert uow.users.saved == []
    assert uow.rollbacks == 1


async def test_the_last_owner_cannot_be_deactivated_by_a_demoted_owner(user_service, add_user, uow):
    first, second = add_user("owner"), add_user("owner")

    def second_deactivated_first_meanwhile() -> None:
        first.active = False

    uow.users.before_lock = second_deactivated_first_meanwhile

    with pytest.raises(LastOwnerError):
        await user_service.update_user(principal(first), second.id, UserUpdate(active=False))

    assert uow.users.rows[second.id].active is True
