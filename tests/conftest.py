"""Shared fixtures. Integration tests need root and the real kernel; every test's cgroups go
under a parent named for this test run, and a leak check runs after the whole session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import children_of, processes_mentioning

# One cgroup parent per test run, also for the `corral` commands the tests start.
TEST_PARENT = f"corral-test-{os.getpid()}"
os.environ["CORRAL_CGROUP_PARENT"] = TEST_PARENT
TEST_STATE = Path(f"/run/corral-test-{os.getpid()}")
os.environ["CORRAL_ROOT"] = str(TEST_STATE)
# Images and containers of this run: never the machine's /var/lib/corral.
TEST_DATA = Path(f"/var/tmp/corral-test-data-{os.getpid()}")
os.environ["CORRAL_DATA_ROOT"] = str(TEST_DATA)

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root and the real kernel")
    for item in items:
        if "integration" in item.nodeid.split("/") and not IS_ROOT:
            item.add_marker(skip)


def _mounts() -> set[str]:
    return set(Path("/proc/self/mountinfo").read_text().splitlines())


def _mount_points() -> set[str]:
    return {line.split()[4] for line in _mounts()}


def corral_cmd() -> list[str]:
    return [sys.executable, "-m", "corral.cli.main"]


@pytest.fixture(scope="session", autouse=True)
def leak_check() -> Iterator[None]:
    """After the suite: no test cgroup, mount, or child process is left behind."""
    before_mounts = _mount_points()
    yield
    problems: list[str] = []
    if IS_ROOT:
        from corral.cgroups import open_manager

        manager = open_manager(parent=TEST_PARENT)
        leftovers = manager.children()
        if leftovers:
            problems.append(f"cgroups left under {TEST_PARENT}: {leftovers}")
            for group in leftovers:  # clean up anyway, then fail
                try:
                    manager.delete(group, force=True)
                except Exception as err:
                    problems.append(f"could not remove {group}: {err}")
        manager.remove_parent()
        # runc also makes the parent in the named (systemd) and unified hierarchies: remove
        # those when empty, and report any that still hold groups.
        from corral.cgroups import detect

        for h in detect().hierarchies:
            for top in sorted(Path(h.mountpoint).rglob(TEST_PARENT)):
                for d in [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]:
                    try:
                        d.rmdir()
                    except OSError:
                        problems.append(f"cgroup directory left: {d}")
    new_mounts = _mount_points() - before_mounts
    if new_mounts:
        problems.append(f"mounts left: {sorted(new_mounts)}")
    kids = children_of(os.getpid())
    if kids:
        problems.append(f"child processes left: {kids}")
    monitors = processes_mentioning(str(TEST_DATA))
    if monitors:
        problems.append(f"engine processes left (monitors): {monitors}")
    if TEST_STATE.exists():
        import shutil

        shutil.rmtree(TEST_STATE, ignore_errors=True)
    if TEST_DATA.exists():
        import shutil

        shutil.rmtree(TEST_DATA, ignore_errors=True)
    assert not problems, "leak check failed:\n  " + "\n  ".join(problems)
