"""Helpers of the fault-injection suite: run the real CLIs, snapshot folders, find survivors.

Every test here drives a command the way a hostile or unlucky user would and checks the
contract: the exit code, one line on stderr (no traceback), and that files which existed before
are unchanged. Signal tests run the CLIs as subprocesses (``python -c 'from csmoe_cli... import
main; main()'``, the console scripts' code) and look for leftover processes in ``/proc``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

#: the two command-line apps, as module paths
DATA_APP = "csmoe_cli.data_app"
MODEL_APP = "csmoe_cli.model_app"


@dataclass
class Outcome:
    """What a command did: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """The non-empty lines of stderr that are not notes or warnings."""
        return [
            ln for ln in self.err.splitlines() if ln.strip() and not ln.startswith(("note", "warn"))
        ]


def invoke(app_module: str, args: list[str]) -> Outcome:
    """Run a command in-process with Typer's CliRunner (stderr kept apart)."""
    import importlib

    app = importlib.import_module(app_module).app
    try:
        res = CliRunner(mix_stderr=False).invoke(app, [str(a) for a in args])
        err = res.stderr
    except TypeError:  # click >= 8.2 keeps stderr apart by default
        res = CliRunner().invoke(app, [str(a) for a in args])
        err = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception  # an unexpected exception is a test failure, with its traceback
    return Outcome(res.exit_code, res.stdout, err)


def assert_one_line_error(outcome: Outcome, *needles: str, code: int | None = None) -> str:
    """Assert a failed command printed exactly one ``error:`` line (and no traceback)."""
    text = outcome.out + outcome.err
    assert "Traceback" not in text, text
    assert outcome.code != 0, text
    if code is not None:
        assert outcome.code == code, text
    errors = [ln for ln in outcome.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 (or ``dir``) of everything under ``folder``."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


# ------------------------------------------------------------------------------ processes


def cli_command(app_module: str, args: list[str]) -> list[str]:
    """The argv that runs an app the way its console script does."""
    return [sys.executable, "-c", f"from {app_module} import main; main()", *map(str, args)]


def start(app_module: str, args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start a command as a subprocess (its own session, so it has no terminal)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("COLUMNS", None)
    env["PYTHONFAULTHANDLER"] = "1"  # a hung command can be made to show where it hangs
    return subprocess.Popen(
        cli_command(app_module, args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """A live process (a zombie is dead)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the command and everything it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[4]) == sid:
                members.append(int(entry.name))
    return members


def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {seconds:g} s waiting for {what}")


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; whatever survives the test is killed (by session id)."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


#: root's capabilities that override file permissions, dropped by :func:`invoke_unprivileged`
_DAC_CAPS = "-dac_override,-dac_read_search,-fowner"


def invoke_unprivileged(app_module: str, args: list[str]) -> Outcome:
    """Run a command so that file permissions bind it, as they bind a normal user.

    Not root: in-process (:func:`invoke`). Root: a subprocess without the capabilities that
    override permissions (``setpriv``); skipped where ``setpriv`` is missing.
    """
    import shutil

    if os.geteuid() != 0:
        return invoke(app_module, args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root, and no setpriv to drop the permission-overriding capabilities")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "COLUMNS": "200"}
    proc = subprocess.run(
        [setpriv, "--inh-caps=-all", f"--bounding-set={_DAC_CAPS}",
         *cli_command(app_module, args)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------------ data


def _hang_rows(root: Path, rows: list[dict[str, Any]], which: tuple[int, ...]) -> list[Path]:
    """Point rows' ``s2_path`` at named pipes: a worker that opens one blocks until killed.

    A deterministic stand-in for a slow or hung file system: the build is certainly still running
    when the test signals it. Returns the pipes; :func:`_unhang` turns them into real patches.
    """
    pipes = []
    for i in which:
        pipe = root / f"hang_{i}.tif"
        os.mkfifo(pipe)
        rows[i] = {**rows[i], "s2_path": pipe.name, "real_s2": rows[i]["s2_path"]}
        pipes.append(pipe)
    return pipes


def _unhang(root: Path, rows: list[dict[str, Any]]) -> None:
    """Replace each pipe of :func:`_hang_rows` by a copy of the row's real patch folder."""
    import shutil

    for row in rows:
        if "real_s2" in row:
            pipe = root / row["s2_path"]
            pipe.unlink()
            shutil.copytree(root / row["real_s2"], pipe)


# ------------------------------------------------------------------------------ file systems


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "1m", files: dict[str, bytes] | None = None,
                     readonly: bool = False, full: bool = False) -> Iterator[Path]:  # fmt: skip
    """Mount a real tmpfs of ``size`` on ``folder`` holding ``files``; skip where mounting is refused.

    ``readonly``: remounted read-only after ``files`` are written (EROFS, which binds root too);
    ``full``: a ``filler`` file takes every free byte, so the next write fails with ENOSPC.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        pytest.skip("mounting a tmpfs is not permitted here (the injected cases cover it)")
    try:
        for name, data in (files or {}).items():
            (folder / name).write_bytes(data)
        if full:
            with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
        if readonly:
            assert _mount("-o", "remount,ro", str(folder)), "cannot remount the tmpfs read-only"
        yield folder
    finally:
        if subprocess.run(["umount", "-l", str(folder)], capture_output=True).returncode != 0:
            raise RuntimeError(f"cannot unmount the test tmpfs {folder}")


class Faults:
    """The helpers above, handed to tests as the ``faults`` fixture (tests import no helpers)."""

    DATA_APP = DATA_APP
    MODEL_APP = MODEL_APP
    invoke = staticmethod(invoke)
    assert_one_line_error = staticmethod(assert_one_line_error)
    snapshot = staticmethod(snapshot)
    start = staticmethod(start)
    alive = staticmethod(alive)
    children = staticmethod(children)
    session_members = staticmethod(session_members)
    wait_for = staticmethod(wait_for)
    hang_rows = staticmethod(_hang_rows)
    small_filesystem = staticmethod(small_filesystem)
    invoke_unprivileged = staticmethod(invoke_unprivileged)
    unhang = staticmethod(_unhang)


@pytest.fixture(scope="session")
def faults() -> type[Faults]:
    """The fault suite's helpers (:class:`Faults`)."""
    return Faults
