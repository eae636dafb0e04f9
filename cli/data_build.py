"""CLI commands: build-manifest (descriptor engine). (Being written: register() adds the commands.)"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
