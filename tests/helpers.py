"""Test helpers: run code in a forked child (so namespace and capability changes never
touch the test process) and small polling utilities."""

from __future__ import annotations

import os
import pickle
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_child(fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Run fn in a forked child and return its (picklable) result; re-raise its exception."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            payload = pickle.dumps(("ok", fn()))
        except BaseException as err:
            try:
                payload = pickle.dumps(("err", err))
            except Exception:
                payload = pickle.dumps(("err", RuntimeError(traceback.format_exc())))
        with os.fdopen(write_fd, "wb") as w:
            w.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as r:
        data = r.read()
    deadline = time.monotonic() + timeout
    while True:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise TimeoutError("child did not finish")
        time.sleep(0.005)
    if not data:
        raise RuntimeError("child died without reporting")
    kind, value = pickle.loads(data)
    if kind == "err":
        raise value
    return value  # type: ignore[no-any-return]


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(b")") + 2 :].split()
        if int(rest[1]) == pid and rest[0] != b"Z":
            out.append(int(entry))
    return out


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (the engine's monitors name their data root)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def skip_without_cpuset() -> None:
    """Skip the calling test on a kernel without the cpuset controller (User-Mode Linux)."""
    import pytest

    from corral.cgroups import Mode, detect

    layout = detect()
    has = (
        layout.unified is not None and "cpuset" in layout.unified.subsystems
        if layout.mode == Mode.V2
        else layout.hierarchy_of("cpuset") is not None
    )
    if not has:
        pytest.skip("no cpuset controller on this kernel (User-Mode Linux has none)")


_NETWORKING: list[bool] = []


def networking_supported() -> bool:
    """Bridges, veth pairs and nftables in this kernel (User-Mode Linux has none of them):
    probed once by making and deleting a bridge and listing nft tables."""
    if not _NETWORKING:
        import subprocess

        from corral.errors import CorralError
        from corral.network import netlink

        name = f"crlprobe{os.getpid() % 100000}"
        try:
            netlink.ensure_bridge(name, "192.0.0.1", 32, 1500)
            netlink.delete_link(name)
            ok = subprocess.run(["nft", "list", "tables"], capture_output=True).returncode == 0
        except (CorralError, OSError):
            ok = False
        _NETWORKING.append(ok)
    return _NETWORKING[0]
