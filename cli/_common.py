"""Shared CLI plumbing: one-line errors without tracebacks, a shared rich console, ``--version``.

Every command module defines its own ``app = typer.Typer()`` whose commands are decorated with
``@app.command(NAME)`` and ``@user_errors``; the two root apps merge them with ``add_typer``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from csmoe_common import CsmoeError, __version__

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn user-facing errors (and Ctrl-C) into one clear line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            raise fail("interrupted; no partial output was left behind", code=130) from None
        except CsmoeError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise fail(f"{exc.strerror or exc}: {exc.filename}") from None
        except MemoryError:
            raise fail("out of memory; try fewer --workers or a smaller chunk size") from None

    return wrapper  # type: ignore[return-value]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"csmoe {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Root options."""


def add_version_option(app: typer.Typer) -> None:
    """Give ``app`` a root ``--version`` option (both apps belong to the ``csmoe`` distribution)."""
    app.callback()(_root)


def run_app(app: typer.Typer) -> None:
    """Console-script entry point: run ``app`` and keep tracebacks of unexpected errors short."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
