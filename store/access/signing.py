"""HMAC-SHA256 signatures with the settings' ``secret_key``, for what must not be forged.

Two uses: the login form's CSRF token (there is no session yet to hold one), and a morning
check the web app hands to a Prefect worker (the flow records only a submission the web app
signed, so a run started straight through the Prefect API with made-up parameters is refused).
Each signature names its purpose, so one kind can never stand in for another.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from store.db import settings


def _key(secret: str | None) -> bytes:
    return (secret if secret is not None else settings().secret_key).encode()


def canonical(payload: Any) -> bytes:
    """One byte string per value: keys sorted, no spaces, dates as ISO text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sign(purpose: str, payload: Any, *, secret: str | None = None) -> str:
    return hmac.new(_key(secret), purpose.encode() + b"\n" + canonical(payload), hashlib.sha256).hexdigest()


def verify(purpose: str, payload: Any, signature: str | None, *, secret: str | None = None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(purpose, payload, secret=secret).encode(), str(signature).encode())
