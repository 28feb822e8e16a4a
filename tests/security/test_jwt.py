"""Bad access tokens get 401 — at the gateway and directly at a service (customers).

Against the real stack nobody but auth holds the signing key, so forged tokens are signed with a
foreign key (under the stack's real ``kid`` or an unknown one) and must fail on the signature or
the key id. Each claim check (``exp``, ``nbf``, ``aud``, ``iss``, ``typ`` …) is therefore ALSO
exercised in-process against a customers app that trusts the test signer's key, where only that
one claim is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from testkit import TokenSigner, serve_in_process
from tests.security._helpers import register

pytestmark = pytest.mark.e2e


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    encode = lambda value: _b64(json.dumps(value, separators=(",", ":")).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}"


def alg_none(claims: dict[str, Any], kid: str) -> str:
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def public_key_secrets(jwk: dict[str, Any]) -> dict[str, bytes]:
    """The forms of the public key an algorithm-confusion attacker would use as HMAC secret."""
    raw = _unb64(jwk["x"])
    public = jwt.PyJWK.from_dict(jwk).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"raw": raw, "pem": pem, "jwk_json": json.dumps(jwk).encode()}


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _claims(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "churn-auth",
        "aud": "churn-platform",
        "sub": "forged-user",
        "tid": tenant_id,
        "role": "owner",
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "forged",
    }
    claims.update(overrides)
    return claims


# ------------------------------------------------------------------- the real stack


@pytest.fixture(scope="module")
async def real(stack: Any) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        owner = await register(client, "jwt-victim")
        jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()
        yield {"owner": owner, "jwks": jwks}


def stack_tokens(owner: Any, jwks: dict[str, Any]) -> dict[str, str]:
    kid = owner.kid
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    tid = owner.tenant_id
    foreign = TokenSigner()
    under_real_kid = TokenSigner()
    under_real_kid.kid = kid  # a foreign key claiming to be the stack's key
    now = datetime.now(UTC)
    return {
        "alg_none": alg_none(_claims(tid), kid),
        "alg_none_unsigned_real_payload": ".".join(owner.access_token.split(".")[:2]) + ".",
        **{
            f"hs256_public_key_{name}": hs256_with(secret, _claims(tid), kid)
            for name, secret in public_key_secrets(jwk).items()
        },
        "expired": under_real_kid.issue(tid, ttl=timedelta(minutes=-5)),
        "not_yet_valid": under_real_kid.issue(tid, nbf=now + timedelta(minutes=10)),
        "wrong_aud": under_real_kid.issue(tid, aud="someone-else"),
        "wrong_iss": under_real_kid.issue(tid, iss="https://evil.example"),
        "foreign_key_real_kid": under_real_kid.issue(tid),
        "unknown_kid": foreign.issue(tid),
        "no_kid": jwt.encode(_claims(tid), foreign.private_key, algorithm="EdDSA"),
        "tampered_tenant": tampered(owner.access_token, tid="another-tenant"),
        "tampered_role": tampered(owner.access_token, role="owner", sub="someone-else"),
        "tampered_exp": tampered(owner.access_token, exp=int(now.timestamp()) + 86400 * 365),
        "signature_stripped": ".".join(owner.access_token.split(".")[:2]) + ".AAAA",
        "refresh_token_as_access": owner.refresh_token,
        "garbage": "abc.def.ghi",
    }


KINDS = [
    "alg_none",
    "alg_none_unsigned_real_payload",
    "hs256_public_key_raw",
    "hs256_public_key_pem",
    "hs256_public_key_jwk_json",
    "expired",
    "not_yet_valid",
    "wrong_aud",
    "wrong_iss",
    "foreign_key_real_kid",
    "unknown_kid",
    "no_kid",
    "tampered_tenant",
    "tampered_role",
    "tampered_exp",
    "signature_stripped",
    "refresh_token_as_access",
    "garbage",
]


@pytest.mark.parametrize("target", ["gateway", "customers"])
async def test_the_real_token_works(stack, real, target):
    base = stack.gateway_url if target == "gateway" else stack.url("customers")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.get("/v1/customers", headers=real["owner"].headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["gateway", "customers"])
async def test_bad_tokens_are_401(stack, real, target, kind):
    token = stack_tokens(real["owner"], real["jwks"])[kind]
    base = stack.gateway_url if target == "gateway" else stack.url("customers")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.get("/v1/customers", headers={"Authorization": f"Bearer {token}"})
        write = await client.post(
            "/v1/customers",
            headers={"Authorization": f"Bearer {token}"},
            json={"customer_id": f"forged-{kind}"},
        )
    assert response.status_code == 401, (kind, response.text)
    assert write.status_code == 401, (kind, write.text)
    assert response.headers["content-type"].startswith("application/problem+json")


# ------------------------------------------------------------------- claim checks in-process


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner()


@pytest.fixture(scope="module")
async def customers_app(
    signer: TokenSigner, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    from churn_customers.config import Settings
    from churn_customers.main import create_app

    db = Path(tmp_path_factory.mktemp("jwt-customers")) / "customers.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db}",
        kafka_bootstrap_servers=kafka_bootstrap,
        run_workers=False,
        log_json=False,
    )
    async with serve_in_process(create_app(settings, token_verifier=signer.verifier())) as client:
        yield client


def in_process_tokens(signer: TokenSigner) -> dict[str, str]:
    tid = "tenant-in-process"
    now = datetime.now(UTC)
    jwk = signer.jwks()["keys"][0]
    claims = _claims(tid)
    without = lambda name: jwt.encode(  # noqa: E731
        {k: v for k, v in claims.items() if k != name},
        signer.private_key,
        algorithm="EdDSA",
        headers={"kid": signer.kid},
    )
    return {
        "alg_none": alg_none(claims, signer.kid),
        **{
            f"hs256_public_key_{name}": hs256_with(secret, claims, signer.kid)
            for name, secret in public_key_secrets(jwk).items()
        },
        "expired": signer.issue(tid, ttl=timedelta(minutes=-5)),
        "expired_beyond_leeway": signer.issue(
            tid,
            iat=now - timedelta(minutes=20),
            nbf=now - timedelta(minutes=20),
            exp=now - timedelta(seconds=30),
        ),
        "not_yet_valid": signer.issue(tid, nbf=now + timedelta(minutes=10)),
        "wrong_aud": signer.issue(tid, aud="someone-else"),
        "wrong_iss": signer.issue(tid, iss="https://evil.example"),
        "unknown_kid": TokenSigner().issue(tid),
        "tampered": tampered(signer.issue(tid, role="viewer"), role="owner"),
        "refresh_type": signer.issue(tid, typ="refresh"),
        "unknown_role": signer.issue(tid, role="superuser"),
        "missing_exp": without("exp"),
        "missing_tid": without("tid"),
        "missing_aud": without("aud"),
        "missing_typ": without("typ"),
    }


IN_PROCESS_KINDS = [
    "alg_none",
    "hs256_public_key_raw",
    "hs256_public_key_pem",
    "hs256_public_key_jwk_json",
    "expired",
    "expired_beyond_leeway",
    "not_yet_valid",
    "wrong_aud",
    "wrong_iss",
    "unknown_kid",
    "tampered",
    "refresh_type",
    "unknown_role",
    "missing_exp",
    "missing_tid",
    "missing_aud",
    "missing_typ",
]


async def test_in_process_control_token_works(customers_app, signer):
    token = signer.issue("tenant-in-process")
    response = await customers_app.get(
        "/v1/customers", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", IN_PROCESS_KINDS)
async def test_in_process_claim_checks(customers_app, signer, kind):
    token = in_process_tokens(signer)[kind]
    response = await customers_app.get(
        "/v1/customers", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, (kind, response.text)


def test_every_kind_is_defined(signer):
    assert set(in_process_tokens(signer)) == set(IN_PROCESS_KINDS)
