from datetime import timedelta
from typing import Any

import jwt
import pytest

from churn_shared.errors import UnauthorizedError


async def test_valid_access_token_yields_principal(token_signer):
    principal = await token_signer.verifier().verify(token_signer.issue("t1", role="analyst"))
    assert principal.tenant_id == "t1"
    assert principal.role == "analyst"
    assert principal.has_role("viewer")
    assert not principal.has_role("admin")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda s: s.issue("t1", ttl=timedelta(seconds=-60)), id="expired"),
        pytest.param(lambda s: s.issue("t1", aud="someone-else"), id="wrong-aud"),
        pytest.param(lambda s: s.issue("t1", iss="evil"), id="wrong-iss"),
        pytest.param(lambda s: s.issue("t1", typ="refresh"), id="refresh-as-access"),
        pytest.param(lambda s: s.issue("t1", role="god"), id="unknown-role"),
        pytest.param(
            lambda s: jwt.encode({"sub": "x", "tid": "t1"}, None, algorithm="none"), id="alg-none"
        ),
    ],
)
async def test_bad_tokens_are_rejected(token_signer, mutate):
    with pytest.raises(UnauthorizedError):
        await token_signer.verifier().verify(mutate(token_signer))


async def test_tampered_payload_is_rejected(token_signer):
    header, _payload, sig = token_signer.issue("t1").split(".")
    forged = token_signer.issue("t2").split(".")[1]
    with pytest.raises(UnauthorizedError):
        await token_signer.verifier().verify(f"{header}.{forged[:-2]}AA.{sig}")
    with pytest.raises(UnauthorizedError):
        await token_signer.verifier().verify(f"{header}.{forged}.{sig}")


def _counting_source(signers: list[Any], calls: list[int]) -> Any:
    async def source() -> dict[str, Any]:
        calls.append(1)
        return {"keys": [key for signer in signers for key in signer.jwks()["keys"]]}

    return source


async def test_a_key_rotated_in_right_after_a_fetch_is_accepted_at_once(token_signer):
    """Regression: a rotation within the refetch interval used to refuse the new tokens."""
    from churn_shared.security import TokenVerifier
    from testkit import TEST_AUDIENCE, TEST_ISSUER, TokenSigner

    published = [token_signer]
    calls: list[int] = []
    verifier = TokenVerifier(
        _counting_source(published, calls),
        issuer=TEST_ISSUER,
        audience=TEST_AUDIENCE,
        min_refetch_seconds=0.3,
    )
    await verifier.verify(token_signer.issue("t1"))
    rotated = TokenSigner()
    published.append(rotated)  # the auth service rotates: old and new key both published
    principal = await verifier.verify(rotated.issue("t1", role="viewer"))
    assert principal.role == "viewer"
    assert len(calls) == 2
    await verifier.verify(token_signer.issue("t1"))  # the previous key keeps working
    assert len(calls) == 2


async def test_forged_key_ids_share_one_refetch(token_signer):
    import asyncio

    from churn_shared.security import TokenVerifier
    from testkit import TEST_AUDIENCE, TEST_ISSUER, TokenSigner

    calls: list[int] = []
    verifier = TokenVerifier(
        _counting_source([token_signer], calls),
        issuer=TEST_ISSUER,
        audience=TEST_AUDIENCE,
        min_refetch_seconds=0.3,
    )
    await verifier.verify(token_signer.issue("t1"))
    strangers = [TokenSigner() for _ in range(20)]

    async def attempt(signer: TokenSigner) -> bool:
        try:
            await verifier.verify(signer.issue("t1"))
        except UnauthorizedError:
            return False
        return True

    results = await asyncio.gather(*(attempt(s) for s in strangers))
    assert not any(results)
    assert len(calls) <= 3  # the initial fetch plus shared refetches, not one per request


async def test_a_verified_token_is_remembered_until_its_key_leaves_the_key_set(
    token_signer, monkeypatch
):
    import jwt as pyjwt

    from churn_shared.security import TokenVerifier
    from testkit import TEST_AUDIENCE, TEST_ISSUER, TokenSigner

    published = [token_signer]
    verifier = TokenVerifier(
        _counting_source(published, []),
        issuer=TEST_ISSUER,
        audience=TEST_AUDIENCE,
        ttl_seconds=0.0,
    )
    token = token_signer.issue("t1")
    decodes: list[str] = []
    real_decode = pyjwt.decode
    monkeypatch.setattr(
        pyjwt, "decode", lambda *a, **k: decodes.append("x") or real_decode(*a, **k)
    )
    first = await verifier.verify(token)
    again = await verifier.verify(token)
    assert again == first
    assert len(decodes) == 1  # the signature was checked once
    published[:] = [TokenSigner()]  # the key is withdrawn; the next fetch drops it
    await verifier.verify(published[0].issue("t1"))
    with pytest.raises(UnauthorizedError):
        await verifier.verify(token)


async def test_missing_keys_answer_503_not_401_and_warm_up_loads_them_when_auth_appears() -> None:
    """A service whose key fetch fails has no opinion on the token: 503 + Retry-After, and a
    background warm-up keeps trying until auth answers."""
    from churn_shared.errors import ServiceUnavailableError
    from churn_shared.security import TokenVerifier
    from testkit import TokenSigner

    signer = TokenSigner()
    up = False
    calls = 0

    async def source() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if not up:
            raise OSError("connection refused")
        return signer.jwks()

    verifier = TokenVerifier(source, issuer="churn-auth", audience="churn-platform")
    with pytest.raises(ServiceUnavailableError) as refused:
        await verifier.verify(signer.issue("t-1"))
    assert refused.value.headers == {"Retry-After": "1"}
    assert not await verifier.warm_up(attempts=2, delay_seconds=0.01)
    up = True
    assert await verifier.warm_up(attempts=2, delay_seconds=0.01)
    assert (await verifier.verify(signer.issue("t-1"))).tenant_id == "t-1"
