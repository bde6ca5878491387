"""The cgroup v2 backend: one unified tree.

Two kernel rules shape it. A controller is usable in a group only when every ancestor
enables it in cgroup.subtree_control (so Corral enables what a group needs on the way down
from its parent). And no internal processes: a non-root group that enables controllers for
its children may not hold processes itself (so processes go in leaves only).
"""

from __future__ import annotations

import errno
import os
import time

from corral.errors import (
    CgroupBusy,
    CgroupInvalid,
    CgroupNotFound,
    CgroupUnsupported,
    KernelError,
)
from corral.kernel.process import require_pid

from . import fs, teardown
from .fs import join
from .layout import HostLayout
from .manager import (
    SIGKILL,
    BaseManager,
    FreezerState,
    Stats,
    host_dir,
    join_cgroup,
    parent_cgroup_path,
)
from .resources import (
    UNLIMITED,
    Resources,
    blkio_weight_to_io_weight,
    shares_to_weight,
    swap_for_v2,
)

_IO_MAX_KEYS = {
    "read_bps": "rbps",
    "write_bps": "wbps",
    "read_iops": "riops",
    "write_iops": "wiops",
}


class V2Manager(BaseManager):
    def __init__(self, layout: HostLayout, parent: str) -> None:
        unified = layout.unified
        if unified is None:
            raise CgroupUnsupported("no cgroup2 filesystem is mounted")
        self.mode = layout.mode
        self.layout = layout
        self.parent = parent
        self.hierarchy = unified
        self.own_dir = host_dir(unified, layout.own_path(unified))
        self.base = host_dir(unified, parent_cgroup_path(layout, unified, parent))
        # The group above Corral's tree: the first one whose subtree_control Corral may need
        # to extend. Corral's own groups start below it.
        inside = self.base.startswith(self.own_dir.rstrip("/") + "/")
        self.anchor = self.own_dir if inside else host_dir(unified, "/")

    def _dir(self, group: str) -> str:
        return join(self.base, group)

    def directories(self, group: str) -> dict[str, str]:
        d = self._dir(self._group(group))
        return {"unified": d} if fs.is_dir(d) else {}

    def planned_directories(self, group: str) -> dict[str, str]:
        return {"unified": self._dir(self._group(group))}

    def exists(self, group: str) -> bool:
        return fs.is_dir(self._dir(self._group(group)))

    def cgroup_path(self, group: str) -> str:
        parent = parent_cgroup_path(self.layout, self.hierarchy, self.parent)
        return join_cgroup(parent, self._group(group))

    def children(self, group: str | None = None) -> list[str]:
        prefix = self._group(group) if group else ""
        start = join(self.base, prefix) if prefix else self.base
        names = [os.path.basename(d) for d in fs.child_dirs(start)]
        return [f"{prefix}/{n}" if prefix else n for n in names]

    # -- lifecycle --------------------------------------------------------------------

    def available_controllers(self) -> list[str]:
        top = self.base if fs.is_dir(self.base) else self.anchor
        try:
            return fs.read(join(top, "cgroup.controllers")).split()
        except CgroupNotFound:
            return []

    def create(
        self,
        group: str,
        resources: Resources | None = None,
        controllers: list[str] | None = None,
    ) -> None:
        name = self._group(group)
        wanted = controllers if controllers else self.available_controllers()
        offered = set(fs.read(join(self.anchor, "cgroup.controllers")).split())
        for c in wanted:
            if c not in offered:
                raise CgroupUnsupported(
                    f"controller {c!r} is not available in `{self.anchor}` "
                    f"(available: {' '.join(sorted(offered)) or 'none'})"
                )
        target = self._dir(name)
        chain: list[str] = []
        p = target
        while p != self.anchor and p.startswith(self.anchor.rstrip("/") + "/"):
            chain.append(p)
            p = os.path.dirname(p)
        chain.reverse()  # parent first, target last
        created: list[str] = []
        try:
            for d in chain:
                # Enable the controllers in d's parent before making d, top down.
                self._enable(os.path.dirname(d), wanted)
                if fs.make_dir(d):
                    created.append(d)
            if resources is not None and not resources.is_empty():
                self.apply(name, resources)
        except BaseException:
            for path in reversed(created):
                try:
                    fs.remove_dir(path, attempts=3)
                except Exception:
                    pass
            raise

    def _enable(self, d: str, controllers: list[str]) -> None:
        enabled = set(fs.read(join(d, "cgroup.subtree_control")).split())
        missing = [c for c in controllers if c not in enabled]
        if not missing:
            return
        try:
            fs.write(join(d, "cgroup.subtree_control"), " ".join("+" + c for c in missing))
        except CgroupBusy as err:
            raise CgroupBusy(
                f"cannot enable {' '.join(missing)} below `{d}`: it holds processes, and cgroup "
                "v2 forbids processes in a group that enables controllers for its children "
                "(run Corral from an empty delegated cgroup or set an absolute --cgroup-parent)"
            ) from err

    def delete(self, group: str, *, force: bool = False) -> None:
        name = self._require(group)
        self._ensure_empty(name, force)
        for d in fs.walk_bottom_up(self._dir(name)):
            fs.remove_dir(d)

    def remove_parent(self) -> None:
        if not self.parent.strip("/"):
            return  # the parent is the hierarchy's root or the caller's own cgroup
        empty = fs.is_dir(self.base) and not fs.child_dirs(self.base)
        if empty and not fs.pids(join(self.base, "cgroup.procs")):
            fs.remove_dir(self.base)

    # -- tasks ------------------------------------------------------------------------

    def add_process(self, group: str, pid: int) -> None:
        self._attach(group, pid, "cgroup.procs")

    def add_thread(self, group: str, tid: int) -> None:
        self._attach(group, tid, "cgroup.threads")

    def _attach(self, group: str, pid: int, file: str) -> None:
        name = self._require(group)
        require_pid(pid)
        try:
            fs.write(join(self._dir(name), file), str(pid))
        except CgroupBusy as err:
            raise CgroupBusy(
                f"cannot put pid {pid} in group {name!r}: it has child groups with controllers "
                "enabled, and cgroup v2 allows processes only in leaf groups"
            ) from err
        except KernelError as err:
            if err.errno == errno.ESRCH:
                raise KernelError("move process", errno.ESRCH, f"pid {pid}") from err
            raise

    def tasks(self, group: str, *, recursive: bool = False) -> list[int]:
        top = self._dir(self._group(group))
        dirs = fs.walk_bottom_up(top) if recursive else [top]
        out: set[int] = set()
        for d in dirs:
            out.update(fs.pids(join(d, "cgroup.procs")))
        return sorted(out)

    # -- parameters -------------------------------------------------------------------

    def _file(self, group: str, key: str) -> str:
        if "." not in key:
            raise CgroupInvalid(f"unknown parameter {key!r}")
        path = join(self._dir(group), key)
        if not fs.exists(path):
            controller = key.split(".", 1)[0]
            hint = ""
            if controller not in ("cgroup",) and controller not in self.enabled(group):
                hint = f"; the {controller} controller is not enabled for this group"
            raise CgroupInvalid(
                f"unknown parameter {key!r} (no such file in `{os.path.dirname(path)}`{hint})"
            )
        return path

    def enabled(self, group: str) -> list[str]:
        return fs.read(join(self._dir(group), "cgroup.controllers")).split()

    def set(self, group: str, key: str, value: str) -> None:
        name = self._require(group)
        fs.write(self._file(name, key), value)

    def get(self, group: str, key: str) -> str:
        name = self._require(group)
        return fs.read(self._file(name, key)).strip()

    def parameters(self, group: str) -> dict[str, str]:
        name = self._require(group)
        out: dict[str, str] = {}
        d = self._dir(name)
        for fname in sorted(os.listdir(d)):
            f = join(d, fname)
            if os.path.isfile(f) and os.access(f, os.R_OK) and not fname.endswith(".pressure"):
                try:
                    out[fname] = fs.read(f).strip()
                except (KernelError, CgroupNotFound):
                    continue
        return out

    def apply(self, group: str, resources: Resources) -> None:
        name = self._require(group)
        for key, value in self._settings(name, resources):
            fs.write(self._file(name, key), value)
        if resources.devices:
            self._attach_device_program(name, resources)

    def _attach_device_program(self, name: str, resources: Resources) -> None:
        """v2 has no devices.allow/deny: an eBPF program attached to the group decides."""
        from corral.kernel.bpf import attach_device_program, load_device_program

        from .devicefilter import device_program

        fd = load_device_program(device_program(resources.devices))
        try:
            attach_device_program(self._dir(name), fd)
        finally:
            os.close(fd)

    def _settings(self, group: str, r: Resources) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if r.net_cls_classid is not None:
            raise CgroupUnsupported("net_cls is a cgroup v1 controller; cgroup v2 has no classid")
        if r.memory_limit is not None:
            out.append(("memory.max", _max(r.memory_limit)))
        if r.memory_reservation is not None:
            out.append(("memory.low", _max(r.memory_reservation, unlimited="max")))
        swap = r.memory_swap
        if swap is None and r.memory_limit == UNLIMITED:
            swap = UNLIMITED
        if swap is not None:
            limit = r.memory_limit
            if limit is None:
                limit = fs.read_int(join(self._dir(group), "memory.max")) or UNLIMITED
            out.append(("memory.swap.max", _max(swap_for_v2(swap, limit))))
        weight = r.cpu_weight
        if weight is None and r.cpu_shares is not None:
            weight = shares_to_weight(r.cpu_shares)
        if weight is not None:
            out.append(("cpu.weight", str(weight)))
        if r.cpu_quota is not None or r.cpu_period is not None:
            quota_now, period_now = fs.read(join(self._dir(group), "cpu.max")).split()
            quota = quota_now if r.cpu_quota is None else _max(r.cpu_quota)
            period = period_now if r.cpu_period is None else str(r.cpu_period)
            out.append(("cpu.max", f"{quota} {period}"))
        if r.cpuset_cpus is not None:
            out.append(("cpuset.cpus", r.cpuset_cpus))
        if r.cpuset_mems is not None:
            out.append(("cpuset.mems", r.cpuset_mems))
        if r.pids_limit is not None:
            out.append(("pids.max", _max(r.pids_limit)))
        io_weight = r.io_weight
        if io_weight is None and r.blkio_weight is not None:
            io_weight = blkio_weight_to_io_weight(r.blkio_weight)
        if io_weight is not None:
            weight_file = (
                "io.weight" if fs.exists(join(self._dir(group), "io.weight")) else "io.bfq.weight"
            )
            out.append(
                (
                    weight_file,
                    f"default {io_weight}" if weight_file == "io.weight" else str(io_weight),
                )
            )
        for t in r.throttles:
            rate = "max" if t.rate in (UNLIMITED, 0) else str(t.rate)
            out.append(("io.max", f"{t.major}:{t.minor} {_IO_MAX_KEYS[t.kind]}={rate}"))
        for size, limit in r.hugetlb:
            out.append((f"hugetlb.{size}.max", _max(limit)))
        out += list(r.raw)
        return out

    # -- freezer ----------------------------------------------------------------------

    def freeze(self, group: str) -> None:
        self._freeze(self._require(group), True)

    def thaw(self, group: str) -> None:
        self._freeze(self._require(group), False)

    def _freeze(self, name: str, on: bool) -> None:
        d = self._dir(name)
        if not fs.exists(join(d, "cgroup.freeze")):
            raise CgroupUnsupported("this kernel has no cgroup v2 freezer (cgroup.freeze, 5.2+)")
        fs.write(join(d, "cgroup.freeze"), "1" if on else "0")
        deadline = time.monotonic() + 10
        want = 1 if on else 0
        while fs.read_keyed(join(d, "cgroup.events")).get("frozen") != want:
            if time.monotonic() > deadline:
                raise KernelError("freeze" if on else "thaw", errno.ETIMEDOUT, str(d))
            time.sleep(0.001)

    def freezer_state(self, group: str) -> str:
        d = self._dir(self._require(group))
        wanted = fs.read(join(d, "cgroup.freeze")).strip() == "1"
        frozen = fs.read_keyed(join(d, "cgroup.events")).get("frozen") == 1
        if frozen:
            return FreezerState.FROZEN
        return FreezerState.FREEZING if wanted else FreezerState.THAWED

    def kill(self, group: str, sig: int = SIGKILL) -> None:
        """cgroup.kill for SIGKILL (atomic: forks included), else each task in the subtree."""
        dirs = self.directories(self._require(group))
        if sig == SIGKILL:
            teardown.kill_and_wait(dirs)
        else:
            teardown.signal_all(dirs, sig)

    # -- stats ------------------------------------------------------------------------

    def stats(self, group: str) -> Stats:
        d = self._dir(self._require(group))
        values: dict[str, int | None] = {}
        cpu = fs.read_keyed(join(d, "cpu.stat"))
        if "usage_usec" in cpu:
            values["cpu_usage_ns"] = cpu["usage_usec"] * 1000
            values["cpu_user_ns"] = cpu.get("user_usec", 0) * 1000
            values["cpu_system_ns"] = cpu.get("system_usec", 0) * 1000
        if "nr_throttled" in cpu:
            values["cpu_throttled_periods"] = cpu["nr_throttled"]
            values["cpu_throttled_ns"] = cpu.get("throttled_usec", 0) * 1000
        if fs.exists(join(d, "memory.current")):
            values["memory_usage"] = int(fs.read(join(d, "memory.current")))
            if fs.exists(join(d, "memory.peak")):
                values["memory_peak"] = int(fs.read(join(d, "memory.peak")))
            values["memory_limit"] = fs.read_int(join(d, "memory.max"))
            events = fs.read_keyed(join(d, "memory.events"))
            values["oom_events"] = events.get("oom")
            values["oom_kills"] = events.get("oom_kill")
        if fs.exists(join(d, "pids.current")):
            values["pids_current"] = int(fs.read(join(d, "pids.current")))
            values["pids_limit"] = fs.read_int(join(d, "pids.max"))
        if fs.exists(join(d, "io.stat")):
            rbytes = wbytes = 0
            for line in fs.read(join(d, "io.stat")).splitlines():
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    if key == "rbytes":
                        rbytes += int(value)
                    elif key == "wbytes":
                        wbytes += int(value)
            values["io_read_bytes"], values["io_write_bytes"] = rbytes, wbytes
        return Stats(**values)


def _max(value: int, unlimited: str = "max") -> str:
    return unlimited if value == UNLIMITED else str(value)
