"""`python -m flows.cli ...` runs the `adaptive-router` command line."""

from flows.cli import app

app(prog_name="adaptive-router")
