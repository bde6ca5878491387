"""The engine's tests drive `corral` as a user does, against the built-in image, in this
test run's data root. Each test's containers are removed afterwards (rm -f), whatever
happened; CORRAL_TEST_ENGINE_RUNTIME runs the suite on another runtime (runc, crun)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DATA
from tests.helpers import networking_supported

IMAGE = "corral/busybox"
RUNTIME = os.environ.get("CORRAL_TEST_ENGINE_RUNTIME", "")


class Corral:
    def __init__(self) -> None:
        self.data_root = str(TEST_DATA)

    def argv(self, *args: str) -> list[str]:
        creating = bool(args) and args[0] in ("run", "create")
        if creating and not networking_supported() and not any(a.startswith("--net") for a in args):
            args = (args[0], "--network", "none", *args[1:])  # no bridges in this kernel
        return [sys.executable, "-m", "corral.cli.main", "--data-root", self.data_root, *args]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"corral {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`corral run` with this suite's runtime."""
        runtime = ["--runtime", RUNTIME] if RUNTIME else []
        split = len(args)
        for i, a in enumerate(args):
            if a == IMAGE:
                split = i
                break
        return self(*(["run", "-q", *runtime, *args[:split], *args[split:]]), **kw)

    def ids(self) -> set[str]:
        return set(self("ps", "-aq", "--no-trunc").stdout.split())

    def inspect(self, name: str) -> dict[str, Any]:
        import json

        doc: dict[str, Any] = json.loads(self("inspect", name).stdout)[0]
        return doc


@pytest.fixture(scope="session")
def corral_session() -> Corral:
    c = Corral()
    c("run", "--rm", "-q", IMAGE, "true")  # builds the built-in image once
    return c


@pytest.fixture
def corral(corral_session: Corral) -> Iterator[Corral]:
    before = corral_session.ids()
    yield corral_session
    for cid in corral_session.ids() - before:
        corral_session("rm", "-f", "-v", cid, check=False)


def wait_for(predicate: Any, timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def data_dir() -> Path:
    return Path(TEST_DATA)
