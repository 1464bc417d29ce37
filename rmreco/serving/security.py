"""API keys: issued once, stored hashed, looked up by a short prefix, compared in constant time.

A key is ``rmr_<prefix>_<secret>``: the prefix (8 hex characters) finds the user row, the hash
of the whole key is compared with ``hmac.compare_digest``. Keys are 192 random bits, so a fast
hash (SHA-256) is safe to store: there is nothing to brute-force as there is with passwords,
and a slow hash would cost every request tens of milliseconds.

:data:`API_KEY_SCHEME` is how the OpenAPI document describes the key (the Authorize button of
``/docs``); it reads no request: :func:`bearer_key` does, and the 401s stay the service's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi.security import HTTPBearer

KEY_PREFIX = "rmr_"

#: The API key in the OpenAPI document: an HTTP bearer token (``Authorization: Bearer <key>``).
#: ``auto_error=False``: were it ever used as a dependency, it would not answer FastAPI's own
#: 401 ("Not authenticated") in place of the service's error body and its challenges.
API_KEY_SCHEME = HTTPBearer(
    scheme_name="apiKey",
    bearerFormat="rmr_<prefix>_<secret>",
    description="An API key from `rmreco users create` (or the demo users `make demo` prints), "
    "sent as `Authorization: Bearer <key>`. Operations under /v1 need one; the probes do not.",
    auto_error=False,
)


@dataclass(frozen=True)
class IssuedKey:
    key: str
    prefix: str
    hash: str


def hash_key(key: str) -> str:
    return "sha256$" + hashlib.sha256(key.encode()).hexdigest()


def issue_key() -> IssuedKey:
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    return IssuedKey(key=key, prefix=prefix, hash=hash_key(key))


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; None without a header, for another
    scheme, or without a key."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def key_prefix(key: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 8:
        return None
    return parts[0]


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
