"""The runtime suite drives a runtime *binary*: Corral's by default, and runc too where it is
installed, so every check is also made against the reference. CORRAL_TEST_RUNTIME=PATH
runs the suite against one given binary (crun, another runc...)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.bundles import make_bundle, write_spec
from tests.conftest import TEST_PARENT, TEST_STATE

CORRAL_RUNTIME = str(Path(sys.executable).parent / "corral-runtime")


def _runtimes() -> list[str]:
    chosen = os.environ.get("CORRAL_TEST_RUNTIME")
    if chosen:
        return [chosen]
    found = [CORRAL_RUNTIME]
    if shutil.which("runc"):
        found.append(shutil.which("runc") or "runc")
    return found


_ids = itertools.count()


@dataclass
class RuntimeCLI:
    binary: str
    root: Path

    @property
    def name(self) -> str:
        return "corral" if self.binary == CORRAL_RUNTIME else Path(self.binary).name

    @property
    def is_corral(self) -> bool:
        return self.name == "corral"

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: after `create` the container's init holds its stdio (as with runc),
        # so a pipe would not reach EOF when the runtime exits.
        import tempfile

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                [self.binary, "--root", str(self.root), *args],
                stdout=out,
                stderr=err,
                timeout=timeout,
                **kw,
            )
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(
                proc.args, proc.returncode, out.read().decode(), err.read().decode()
            )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def state(self, cid: str) -> dict[str, Any]:
        import json

        return dict(json.loads(self("state", cid).stdout))


@pytest.fixture(params=_runtimes(), ids=lambda b: "corral" if b == CORRAL_RUNTIME else Path(b).name)
def rt(request: pytest.FixtureRequest) -> Iterator[RuntimeCLI]:
    root = TEST_STATE / f"rt-{Path(request.param).name}"
    cli = RuntimeCLI(request.param, root)
    yield cli
    # Whatever a test left: delete --force every container, then check nothing is left.
    listing = cli("list", "-q", check=False).stdout.split()
    for cid in listing:
        cli("delete", "--force", cid, check=False)


class Bundle:
    def __init__(self, path: Path, spec: dict[str, Any], cid: str) -> None:
        self.path = path
        self.spec = spec
        self.id = cid

    def write(self) -> None:
        write_spec(self.path, self.spec)

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Any]:
    """bundle(args, **spec changes) -> Bundle with a unique id and a cgroup under the test parent."""

    def make(args: list[str], **changes: Any) -> Bundle:
        cid = f"c{os.getpid()}-{next(_ids)}"
        path = tmp_path / cid
        spec = make_bundle(path, args, **changes)
        spec["linux"]["cgroupsPath"] = f"{TEST_PARENT}/{cid}"
        write_spec(path, spec)
        return Bundle(path, spec, cid)

    yield make
