from datetime import timedelta

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

