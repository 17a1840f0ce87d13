"""The ``chronotick`` command line (needs the ``client`` extra: typer, rich, httpx, tenacity)."""

from chronotick.cli.app import app, main

__all__ = ["app", "main"]
