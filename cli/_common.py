"""Shared CLI plumbing: one-line errors without tracebacks, a shared rich console."""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False)
err_console = Console(stderr=True)

#: exception types whose message is shown to the user as one line (filled lazily to keep imports light)
_USER_ERRORS: tuple[type[BaseException], ...] = ()


def _user_error_types() -> tuple[type[BaseException], ...]:
    global _USER_ERRORS
    if not _USER_ERRORS:
        types: list[type[BaseException]] = []
        try:
            from csmoe_data.errors import CsmoeDataError

            types.append(CsmoeDataError)
        except ImportError:  # pragma: no cover - data half not installed
            pass
        try:
            from csmoe_model.errors import CsmoeError

            types.append(CsmoeError)
        except ImportError:  # pragma: no cover
            pass
        _USER_ERRORS = tuple(types)
    return _USER_ERRORS


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
        except _user_error_types() as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise fail(f"{exc.strerror or exc}: {exc.filename}") from None
        except MemoryError:
            raise fail("out of memory; try fewer --workers or a smaller chunk size") from None

    return wrapper  # type: ignore[return-value]


def _show_version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("csmoe")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree
            version = "0.0.0+unknown"
        typer.echo(f"csmoe {version}")
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
