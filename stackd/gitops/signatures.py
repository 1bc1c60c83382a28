"""Webhook authentication (pure): GitHub's HMAC-SHA256 signature, GitLab's token, a
generic shared secret. Every comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

Verdict = Literal["github", "gitlab", "secret"]


def github_signature(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check(secret: bytes, headers: Mapping[str, str], body: bytes) -> Verdict | None:
    """Which scheme authenticated the request, or None (refuse it). `headers` keys are
    lower-case. An empty secret authenticates nothing."""
    if not secret:
        return None
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        return "github" if hmac.compare_digest(
            signature.encode(), github_signature(secret, body).encode()) else None
    token = headers.get("x-gitlab-token")
    if token is not None:
        return "gitlab" if hmac.compare_digest(token.encode(), secret) else None
    shared = headers.get("x-stackd-secret")
    if shared is not None:
        return "secret" if hmac.compare_digest(shared.encode(), secret) else None
    return None
