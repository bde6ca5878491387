"""`corral stats`: CPU, memory and pids of running containers, read from their cgroups.
CPU % is the usage over a half-second window as a share of one CPU, as docker shows it."""

from __future__ import annotations

import os
import time

from corral.engine import lifecycle
from corral.engine.model import Status
from corral.engine.store import ContainerStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WINDOW = 0.5


def _read(cid: str) -> Any:
    from corral.cgroups.manager import open_manager

    parent = os.environ.get("CORRAL_CGROUP_PARENT") or "corral"
    return open_manager(parent=parent).stats(cid)


def sample(data_root: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
    store = ContainerStore(data_root)
    wanted = ids if ids is not None else store.ids()
    running = [
        c for c in wanted if lifecycle.current(store, c).status in (Status.RUNNING, Status.PAUSED)
    ]
    first = {c: _safe(c) for c in running}
    t0 = time.monotonic()
    time.sleep(WINDOW)
    elapsed = time.monotonic() - t0
    rows = []
    for cid in running:
        before, after = first[cid], _safe(cid)
        if after is None:
            continue
        cpu = 0.0
        if (
            before is not None
            and before.cpu_usage_ns is not None
            and after.cpu_usage_ns is not None
        ):
            cpu = (after.cpu_usage_ns - before.cpu_usage_ns) / (elapsed * 1e9) * 100
        limit = after.memory_limit or 0
        usage = after.memory_usage or 0
        rows.append(
            {
                "ID": cid,
                "Name": store.load_spec(cid).name,
                "CPUPerc": max(cpu, 0.0),
                "MemUsage": usage,
                "MemLimit": limit if limit and limit < 1 << 60 else 0,
                "MemPerc": usage / limit * 100 if limit and limit < 1 << 60 else 0.0,
                "PIDs": after.pids_current or 0,
            }
        )
    return rows


def _safe(cid: str) -> Any:
    try:
        return _read(cid)
    except Exception:  # the container stopped meanwhile
        return None
