"""The admin token rule: admin routes need a bearer token, except on a loopback-only gateway with none
set; a gateway never binds beyond loopback without one. The token comes from an environment variable
or a Prefect Secret block, and is never logged."""

from __future__ import annotations

import hmac
import ipaddress
import os

from routing.errors import ConfigError

TOKEN_ENV = "ADAPTIVE_ROUTER_ADMIN_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_token(secret_block: str | None = None) -> str | None:
    """The token: the named Secret block's value, else $ADAPTIVE_ROUTER_ADMIN_TOKEN, else None."""
    if secret_block:
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(secret_block).get()
        except ValueError as exc:
            raise ConfigError(f"cannot load the admin token's Secret block {secret_block!r}: {exc}") from exc
        return str(value) or None
    return os.environ.get(TOKEN_ENV) or None


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to bind {host} without an admin token: set {TOKEN_ENV} or pass --admin-token-secret "
            "(a Prefect Secret block), or bind 127.0.0.1"
        )


def authorized(token: str | None, header: str | None) -> bool:
    """With no token set (loopback only, see check_bind) admin routes are open; else the bearer must match."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
