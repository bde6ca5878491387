"""The installed `corral` command: scripts/setup.sh's launcher (`python -I -S`, the venv's
site-packages put on sys.path, out without the interpreter's tear-down) behaves as
`python -m corral.cli.main` does: same output, exit codes, flushed when piped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_DATA

LAUNCHER = Path(sys.executable).parent / "corral"


def both(*args: str, **kw: object) -> tuple[subprocess.CompletedProcess[str], ...]:
    argvs = ([str(LAUNCHER)], [sys.executable, "-m", "corral.cli.main"])
    return tuple(
        subprocess.run([*argv, "--data-root", str(TEST_DATA), *args], capture_output=True,
                       text=True, timeout=60, **kw)  # type: ignore[call-overload]
        for argv in argvs
    )  # fmt: skip


def test_it_is_the_fast_launcher() -> None:
    text = LAUNCHER.read_text()
    assert text.startswith("#!") and " -IS\n" in text.splitlines()[0] + "\n"
    import pyroute2  # `corral network` needs the venv's libraries without site

    assert os.path.dirname(os.path.dirname(pyroute2.__file__)) in text


def test_same_output_and_exit_codes_as_the_module() -> None:
    for args, code in [
        (("lxc", "ls", "-1"), 0),
        (("ps", "-a", "--format", "{{.Names}}"), 0),
        (("lxc", "stop", "-n", "no-such-container"), 1),
        (("lxc", "stop", "--no-such-flag"), 2),
        (("lxc", "bogus"), 2),
    ]:
        fast, module = both(*args)
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            module.returncode, module.stdout, module.stderr,
        ), args  # fmt: skip
        assert fast.returncode == code, (args, fast.stderr)


def test_isolated_from_python_variables(tmp_path: Path) -> None:
    (tmp_path / "corral").mkdir()
    (tmp_path / "corral" / "__init__.py").write_text("raise SystemExit('shadowed')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONSTARTUP="/nonexistent")
    fast, _ = both("--version", env=env)
    assert fast.returncode == 0 and fast.stdout.startswith("corral "), fast.stderr


def test_output_is_flushed_into_a_pipe() -> None:
    """A command that returns normally leaves with os._exit: its buffered output (a pipe
    is block-buffered) must reach the reader all the same."""
    fast = subprocess.run(
        f"{LAUNCHER} --data-root {TEST_DATA} info | wc -c",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    _, module = both("info")
    assert module.returncode == 0
    assert int(fast.stdout) == len(module.stdout.encode()) > 100
