from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator

import pytest

from corral.cgroups import Manager, Mode, detect, open_manager
from tests.conftest import TEST_PARENT

_counter = itertools.count()


@pytest.fixture(scope="session")
def manager() -> Manager:
    return open_manager(parent=TEST_PARENT)


@pytest.fixture
def group(manager: Manager) -> Iterator[str]:
    """A fresh group name; whatever the test made under it is removed afterwards."""
    name = f"t{next(_counter)}"
    yield name
    if manager.exists(name):
        manager.delete(name, force=True)


@pytest.fixture(scope="session")
def v1_only() -> None:
    if detect().mode == Mode.V2:
        pytest.skip("cgroup v1 behaviour")


class Child:
    """A Python child that waits for 'go' on stdin, so it can be moved into a group first."""

    def __init__(self, code: str) -> None:
        prelude = "import os, sys, time\nsys.stdin.readline()\n"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", prelude + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def spawn() -> Iterator[type[Child]]:
    made: list[Child] = []

    class Tracked(Child):
        def __init__(self, code: str) -> None:
            super().__init__(code)
            made.append(self)

    yield Tracked
    for child in made:
        child.stop()
