"""Ed25519 signing keys, the key ring that signs access tokens, and opaque refresh tokens.

No SQL here: :mod:`churn_auth.service` loads and stores keys through the repository.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from churn_auth.models import SigningKey

ALGORITHM = "EdDSA"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a token type name, not a secret


_ENCRYPTED_PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----"


class SigningKeyLockedError(RuntimeError):
    """A stored private key cannot be opened with the configured passphrase."""


def new_signing_key(now: datetime, passphrase: bytes | None = None) -> SigningKey:
    """A fresh Ed25519 key pair as a row: PKCS#8 PEM private key and its public JWK.

    With a passphrase the PEM is encrypted (PKCS#8, the best encryption ``cryptography``
    offers), so a copy of the database alone does not yield a key that can mint tokens."""
    private_key = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    ).decode("ascii")
    public_jwk: dict[str, Any] = {
        **jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }
    return SigningKey(kid=kid, private_key_pem=pem, public_jwk=public_jwk, created_at=now)


def open_private_key(row: SigningKey, passphrase: bytes | None) -> Any:
    """The row's private key. Keys stored before a passphrase was configured are plain PEM and
    still open; an encrypted one needs the passphrase it was stored with."""
    pem = row.private_key_pem
    encrypted = pem.lstrip().startswith(_ENCRYPTED_PEM)
    if encrypted and not passphrase:
        raise SigningKeyLockedError(
            f"signing key {row.kid} is encrypted: set CHURN_AUTH_SIGNING_KEY_PASSPHRASE"
        )
    try:
        return serialization.load_pem_private_key(
            pem.encode("ascii"), passphrase if encrypted else None
        )
    except ValueError as exc:
        raise SigningKeyLockedError(
            f"signing key {row.kid} does not open with the configured passphrase"
        ) from exc


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int


class KeyRing:
    """The current signing key plus every public key a valid token may still be signed with."""

    def __init__(
        self,
        current: SigningKey,
        published: Sequence[SigningKey],
        passphrase: bytes | None = None,
    ) -> None:
        key = open_private_key(current, passphrase)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"signing key {current.kid} is not an Ed25519 key")
        self.kid = current.kid
        self._private_key = key
        self._jwks: dict[str, Any] = {"keys": [dict(k.public_jwk) for k in published]}

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set to publish (a copy, safe to hand out)."""
        return {"keys": [dict(k) for k in self._jwks["keys"]]}

    async def jwks_source(self) -> dict[str, Any]:
        """A local ``JwksSource`` for ``TokenVerifier``: no HTTP round trip to ourselves."""
        return self.jwks()

    def issue_access_token(
        self,
        *,
        subject: str,
        tenant_id: str,
        role: str,
        issuer: str,
        audience: str,
        now: datetime,
        ttl: timedelta,
        extra_claims: dict[str, Any] | None = None,
    ) -> AccessToken:
        issued_at = math.floor(now.timestamp())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "tid": tenant_id,
            "role": role,
            "typ": ACCESS_TOKEN_TYPE,
            # NumericDates are whole seconds: some clients (typed JWT libraries, JSON schema
            # ``integer``) refuse a fraction. The revocation check rounds accordingly
            # (:func:`churn_auth.service.tokens_not_before`).
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + int(ttl.total_seconds()),
            "jti": uuid.uuid4().hex,
            **(extra_claims or {}),
        }
        token = jwt.encode(
            claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid}
        )
        return AccessToken(token=token, expires_in=int(ttl.total_seconds()))


def new_refresh_token() -> str:
    """An opaque refresh token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """What is stored instead of the token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_SUCCESSOR_INFO = b"churn-auth refresh-token successor v1"


def _successor_key(refresh_token: str) -> bytes:
    """An AES-256 key derived from the presented refresh token (never from its stored hash)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SUCCESSOR_INFO).derive(
        refresh_token.encode("utf-8")
    )


def seal_successor(refresh_token: str, successor: bytes) -> str:
    """``successor`` (the serialized pair a token was rotated into), encrypted so that only
    whoever presents ``refresh_token`` again can read it; the database alone cannot."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_successor_key(refresh_token)).encrypt(nonce, successor, None)
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_successor(refresh_token: str, sealed: str) -> bytes | None:
    """What :func:`seal_successor` sealed for this token, or ``None`` if it does not open."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        return AESGCM(_successor_key(refresh_token)).decrypt(raw[:12], raw[12:], None)
    except (ValueError, InvalidTag):
        return None


API_KEY_PREFIX = "ck"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: str
    secret_hash: str
    #: ``ck_<id>_<secret>``: what the integrator stores; never kept by the server.
    key: str


def new_api_key() -> NewApiKey:
    """A key id (128 bits, hex) and a 32-byte random secret (URL-safe base64)."""
    key_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    return NewApiKey(
        id=key_id,
        secret_hash=hash_api_key_secret(secret),
        key=f"{API_KEY_PREFIX}_{key_id}_{secret}",
    )


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    prefix, sep, rest = key.strip().partition("_")
    if prefix != API_KEY_PREFIX or not sep:
        return None
    key_id, sep, secret = rest.partition("_")
    if len(key_id) != 32 or not sep or not secret:
        return None
    return key_id, secret


def hash_api_key_secret(secret: str) -> str:
    """SHA-256 (hex) of the secret: enough for 256 random bits, no slow hash needed."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
