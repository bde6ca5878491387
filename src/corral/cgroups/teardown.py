"""Killing and removing a group from the directories recorded when it was made.

`delete` calls this with what `create` saved: no host detection, no backend. It works the
same on v1 (freeze, signal every task, thaw) and v2 (cgroup.kill), and tolerates groups
that are already partly or wholly gone (a create killed half-way).
"""

from __future__ import annotations

import os
import time

from corral.errors import CgroupBusy

from . import fs

SIGKILL = 9


def tasks(dirs: dict[str, str]) -> list[int]:
    out: set[int] = set()
    for top in dirs.values():
        for d in fs.walk_bottom_up(top):
            out.update(fs.pids(fs.join(d, "cgroup.procs")))
    return sorted(out)


def signal_all(dirs: dict[str, str], sig: int) -> None:
    """Signal every task; for SIGKILL, under the freezer so nothing forks away meanwhile."""
    unified = dirs.get("unified")
    if sig == SIGKILL and unified and fs.exists(fs.join(unified, "cgroup.kill")):
        fs.write(fs.join(unified, "cgroup.kill"), "1")
        return
    freezer = next((d for label, d in dirs.items() if "freezer" in label.split(",")), None)
    frozen = sig == SIGKILL and freezer is not None and fs.is_dir(freezer)
    if frozen:
        assert freezer is not None
        _freeze(freezer)
    try:
        for pid in tasks(dirs):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if frozen:
            assert freezer is not None
            fs.write(fs.join(freezer, "freezer.state"), "THAWED")


def _freeze(freezer: str, timeout: float = 1.0) -> None:
    """Ask for FROZEN and wait (briefly) until every task is: a FREEZING task can still fork."""
    state = fs.join(freezer, "freezer.state")
    fs.write(state, "FROZEN")
    deadline = time.monotonic() + timeout
    while fs.read(state).strip() != "FROZEN" and time.monotonic() < deadline:
        time.sleep(0.001)
        fs.write(state, "FROZEN")


def kill_and_wait(dirs: dict[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while tasks(dirs):
        if time.monotonic() > deadline:
            raise CgroupBusy(
                f"tasks in {sorted(dirs.values())[0]} did not exit within {timeout:.0f}s"
            )
        signal_all(dirs, SIGKILL)
        time.sleep(0.001)


def remove(dirs: dict[str, str]) -> None:
    for top in dirs.values():
        for d in fs.walk_bottom_up(top):
            fs.remove_dir(d)
