"""One redactor for every error text a target sends back, before it is logged, stored or emitted.

A provider's 401 body can echo the API key it was sent; exception texts can carry `Authorization`
headers or URLs with keys in them. Anything from a target is hostile input, so the text loses the
target's own secrets (exact match, wherever they appear) and anything shaped like a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# Shapes of credentials: vendor-prefixed keys, bearer/basic tokens, key=value pairs naming a secret,
# and long opaque runs of hex or base64url with letters and digits (a 40+ character token is never prose;
# '/' is left out so that file paths and URLs, made of short parts, stay readable).
_KEY_SHAPES = re.compile(
    r"""
      \b(?:sk|pk|rk|gsk|xai|ghp|gho|github_pat|hf|glpat|AKIA)[-_][A-Za-z0-9_\-]{8,}
    | \bAIza[0-9A-Za-z_\-]{20,}
    | \b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{8,}
    | \b(?:api[_-]?key|apikey|access[_-]?token|secret|password|token|key)\b(["']?\s*[:=]\s*["']?)[^\s"'&,;}]{6,}
    | \b[0-9a-fA-F]{32,}\b
    | (?<![A-Za-z0-9+/=_\-])(?=[A-Za-z0-9+_\-]*\d)(?=[A-Za-z0-9+_\-]*[A-Za-z])[A-Za-z0-9+_\-]{40,}={0,2}
      (?![A-Za-z0-9+/=_\-])
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _replace(match: re.Match[str]) -> str:
    separator = match.group(1)
    if separator is not None:  # keep "api_key=" so the reader sees which field was hidden
        name = match.group(0)[: match.start(1) - match.start(0)]
        return f"{name}{separator}{REDACTED}"
    return REDACTED


def redact(text: str | None, secrets: Iterable[str | None] = ()) -> str | None:
    """`text` without the given secrets and without anything key-shaped; None stays None."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(_replace, text)
