"""Shared CLI plumbing: one-line errors without tracebacks, a shared rich console, ``--version``.

Every command module defines its own ``app = typer.Typer()`` whose commands are decorated with
``@app.command(NAME)`` and ``@user_errors``; the two root apps merge them with ``add_typer``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from csmoe_common import CsmoeError, __version__
from csmoe_common.atomic import os_error_message
from csmoe_common.processes import exit_code, install_termination_handler

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False)
err_console = Console(stderr=True)


class OnceCommand(TyperCommand):
    """A command whose single-valued options may be given once.

    Click keeps the last value of a repeated option silently (``--landcover a.tif --landcover
    b.tif`` would describe ``b.tif`` alone); here a repeat of an option that takes one value is
    a usage error. Options declared as lists (``multiple``) and flags are not affected.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Refuse repeated single-valued options, then parse as usual."""
        if args and not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            counts = Counter(id(p) for p in order)
            for param in dict.fromkeys(order):
                takes_one = (
                    getattr(param, "param_type_name", "") == "option"
                    and not getattr(param, "multiple", False)
                    and not getattr(param, "count", False)
                    and not getattr(param, "is_flag", False)
                )
                if takes_one and counts[id(param)] > 1:
                    ctx.fail(
                        f"{param.opts[0]} is given {counts[id(param)]} times; it takes one value"
                    )
        return list(super().parse_args(ctx, args))


_LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s")


def reflow_help(text: str) -> str:
    r"""A command's help text with each paragraph (and list item) on one line.

    Typer 0.29 keeps the docstring's line breaks after the first paragraph, so Rich wrapped
    each source line on its own and the help came out ragged; joined, Rich wraps a paragraph
    to the terminal. Blank lines, list items (``- x``, ``1. x``), indented lines, paragraphs
    marked with click's ``\b`` and everything after ``\f`` are kept as written.
    """
    head, formfeed, tail = inspect.cleandoc(text).partition("\f")
    paragraphs = []
    for paragraph in head.split("\n\n"):
        if paragraph.startswith("\b"):
            paragraphs.append(paragraph)
            continue
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if lines and line.strip() and not _LIST_ITEM.match(line) and not line.startswith(" "):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs) + formfeed + tail


def _reflow_command_help(command: Any) -> None:
    """Reflow the help of a command and, for a group, of every command under it."""
    if command is None:
        return
    if getattr(command, "help", None):
        command.help = reflow_help(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_command_help(sub)


class OneLineErrorsGroup(TyperGroup):
    """Root group of both CLIs: every usage error is one ``error:`` line, exit 2.

    Typer draws click's usage errors (unknown option, missing option, a value of the wrong type or
    out of range, a ``typer.BadParameter`` a command raises for a value it validated) as a
    multi-line Rich panel under the usage text. Here they keep click's message and exit status
    and get the project's one-line form, with the help hint at its end:
    ``error: Invalid value for --knn-k: 0 is not in the range x>=1. (try 'csmoe eval probe --help')``.
    Sub-commands are parsed and run inside the root group's ``invoke``, so both overrides together
    cover every command of the app.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """Parse the root options; a usage error becomes one line."""
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """Parse and run the sub-command; a usage error becomes one line."""
        with _one_line_usage_errors():
            return super().invoke(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The sub-command, its help reflowed (:func:`reflow_help`)."""
        command = super().get_command(ctx, cmd_name)
        _reflow_command_help(command)
        return command


def usage_error_line(exc: typer.TyperException) -> str:
    """Click's message of a usage error on one line, with the command's help hint."""
    line = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        line += f" (try '{ctx.command_path} {ctx.help_option_names[0]}')"
    return line


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except typer.TyperException as exc:  # click's ClickException and its usage errors
        # ``no_args_is_help`` has printed the help already (typer tells it apart by name as well)
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        raise fail(usage_error_line(exc), code=getattr(exc, "exit_code", 2)) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


#: what a command says when it is interrupted (Ctrl-C, SIGTERM, SIGHUP); commands with more to
#: say (``train``: how to resume) catch the interrupt themselves
INTERRUPTED = "interrupted; no partial output was left behind"

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def os_error_line(exc: OSError) -> str:
    """One line for an ``OSError`` that reached the CLI: its reason and the file(s) it concerns."""
    line = os_error_message(exc)
    if exc.filename2 is not None:
        line += f" -> {exc.filename2}"
    if exc.errno in _DISK_FULL:
        line += " (the disk is full; free space or write elsewhere)"
    return line


def user_errors(func: F) -> F:
    """Turn user-facing errors (and Ctrl-C/SIGTERM) into one clear line and a non-zero exit.

    CsmoeError: its message, exit 1. Any ``OSError`` (read-only folder, full disk, name too long,
    permission): its reason and file, exit 1. An interruption: :data:`INTERRUPTED`, exit 128 + the
    signal (130 for Ctrl-C, 143 for SIGTERM). Out of memory: one line, with the options that bound
    memory when the command has them.
    """
    import inspect

    options = inspect.signature(func).parameters
    hints = [h for p, h in (("workers", "fewer --workers"), ("chunk_size", "a smaller --chunk-size"),
                            ("batch_size", "a smaller --batch-size"), ("max_cells", "a smaller --max-cells"))
             if p in options]  # fmt: skip
    out_of_memory = "out of memory" + (f"; try {' or '.join(hints)}" if hints else "")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            raise fail(INTERRUPTED, code=exit_code(exc)) from None
        except CsmoeError as exc:
            raise fail(" ".join(str(exc).split("\n"))) from None
        except MemoryError:
            raise fail(out_of_memory) from None
        except OSError as exc:
            raise fail(os_error_line(exc)) from None

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
    """Console-script entry point: run ``app``, with SIGTERM and SIGHUP handled like Ctrl-C.

    Schedulers (``timeout``, docker, systemd, SLURM) stop jobs with SIGTERM: it raises
    KeyboardInterrupt in the main thread, so every command cleans up and exits as on Ctrl-C.
    """
    install_termination_handler()
    try:
        app()
    except KeyboardInterrupt as exc:  # outside a command (while parsing options)
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(exit_code(exc))
