"""`adaptive-router mcp`: the router's MCP tools over stdio, for agents and IDEs."""

from __future__ import annotations

from flows.cli.common import DatabaseOption, open_store


def mcp(database: DatabaseOption = None) -> None:
    """Serve the MCP tools (experiments, policy recommendations, rollback, stats, health, decisions, feedback) over stdio."""
    from flows.mcp_tools import build_server

    build_server(open_store(database)).run("stdio")
