"""The cgroup v1 backend: one directory per group in each hierarchy, wherever each
controller is mounted (alone, co-mounted like cpu,cpuacct, or at any path)."""

from __future__ import annotations

import errno
import os
import time

from corral.errors import CgroupInvalid, CgroupNotFound, CgroupUnsupported, KernelError
from corral.kernel.process import require_pid

from . import fs, teardown
from .fs import join
from .layout import Hierarchy, HostLayout, Mode
from .manager import (
    SIGKILL,
    BaseManager,
    Stats,
    host_dir,
    join_cgroup,
    parent_cgroup_path,
)
from .resources import UNLIMITED, Resources, io_weight_to_blkio_weight, weight_to_shares

_UNLIMITED_BYTES = "-1"


class V1Manager(BaseManager):
    def __init__(self, layout: HostLayout, parent: str) -> None:
        self.mode = layout.mode if layout.mode is not Mode.V2 else Mode.V1
        self.layout = layout
        self.parent = parent
        # Only hierarchies with controllers; named ones (name=systemd) are not Corral's to use.
        self.hierarchies = [h for h in layout.v1 if h.subsystems]
        self._base = {
            h.id: host_dir(h, parent_cgroup_path(layout, h, parent)) for h in self.hierarchies
        }

    # -- where things are -------------------------------------------------------------

    def _hierarchy(self, controller: str) -> Hierarchy:
        h = next((h for h in self.hierarchies if controller in h.subsystems), None)
        if h is None:
            known = {s.name for s in self.layout.subsystems}
            if controller not in known:
                raise CgroupInvalid(f"unknown controller {controller!r}")
            where = (
                "the unified (v2) hierarchy"
                if (self.layout.unified and controller in self.layout.unified.subsystems)
                else "no hierarchy"
            )
            raise CgroupUnsupported(
                f"controller {controller!r} is not attached to a mounted v1 hierarchy "
                f"(it is on {where}); attach it with `corral cgroup mount -s {controller} PATH`"
            )
        return h

    def _dir(self, h: Hierarchy, group: str) -> str:
        return join(self._base[h.id], group)

    def directories(self, group: str) -> dict[str, str]:
        name = self._group(group)
        return {
            h.label: self._dir(h, name) for h in self.hierarchies if fs.is_dir(self._dir(h, name))
        }

    def planned_directories(self, group: str) -> dict[str, str]:
        """Where the group's directories are (or will be), in every hierarchy it would use."""
        name = self._group(group)
        return {h.label: self._dir(h, name) for h in self.hierarchies}

    def exists(self, group: str) -> bool:
        name = self._group(group)
        return any(fs.is_dir(self._dir(h, name)) for h in self.hierarchies)

    def cgroup_path(self, group: str) -> str:
        name = self._group(group)
        h = self.hierarchies[0]
        return join_cgroup(parent_cgroup_path(self.layout, h, self.parent), name)

    def children(self, group: str | None = None) -> list[str]:
        names: set[str] = set()
        prefix = self._group(group) if group else ""
        for h in self.hierarchies:
            start = join(self._base[h.id], prefix) if prefix else self._base[h.id]
            for d in fs.child_dirs(start):
                base = os.path.basename(d)
                names.add(f"{prefix}/{base}" if prefix else base)
        return sorted(names)

    # -- lifecycle --------------------------------------------------------------------

    def create(
        self,
        group: str,
        resources: Resources | None = None,
        controllers: list[str] | None = None,
    ) -> None:
        name = self._group(group)
        if controllers:
            chosen = {self._hierarchy(c).id: self._hierarchy(c) for c in controllers}
            targets = list(chosen.values())
        else:
            targets = list(self.hierarchies)
        created: list[str] = []
        try:
            for h in targets:
                self._make_path(h, self._base[h.id], name, created)
            if resources is not None and not resources.is_empty():
                self.apply(name, resources)
        except BaseException:
            for path in reversed(created):
                try:
                    fs.remove_dir(path, attempts=3)
                except Exception:
                    pass
            raise

    def _make_path(self, h: Hierarchy, base: str, name: str, created: list[str]) -> None:
        """mkdir -p from the hierarchy's mount down to base/name, preparing cpuset dirs."""
        target = join(base, name)
        missing: list[str] = []
        p = target
        while not fs.exists(p) and p != h.mountpoint and p.startswith(h.mountpoint + "/"):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            if fs.make_dir(d):
                created.append(d)
                if "cpuset" in h.subsystems:
                    # A new cpuset group starts with no cpus or mems and refuses tasks: copy
                    # the parent's, as runc and LXC do.
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        fs.write(join(d, f), fs.read(join(os.path.dirname(d), f)).strip() or "\n")

    def delete(self, group: str, *, force: bool = False) -> None:
        name = self._require(group)
        self._ensure_empty(name, force)
        for h in self.hierarchies:
            for d in fs.walk_bottom_up(self._dir(h, name)):
                fs.remove_dir(d)

    def remove_parent(self) -> None:
        for h in self.hierarchies:
            base = self._base[h.id]
            if not self.parent.strip("/") or not fs.is_dir(base):
                continue  # the parent is the hierarchy's root or the caller's own cgroup
            if fs.child_dirs(base) or fs.pids(join(base, "cgroup.procs")):
                continue
            fs.remove_dir(base)

    # -- tasks ------------------------------------------------------------------------

    def add_process(self, group: str, pid: int) -> None:
        self._attach(group, pid, "cgroup.procs")

    def add_thread(self, group: str, tid: int) -> None:
        self._attach(group, tid, "tasks")

    def _attach(self, group: str, pid: int, file: str) -> None:
        name = self._require(group)
        require_pid(pid)
        for h in self.hierarchies:
            d = self._dir(h, name)
            if fs.is_dir(d):
                _write_pid(join(d, file), pid)

    def tasks(self, group: str, *, recursive: bool = False) -> list[int]:
        name = self._group(group)
        out: set[int] = set()
        for h in self.hierarchies:
            top = self._dir(h, name)
            dirs = fs.walk_bottom_up(top) if recursive else [top]
            for d in dirs:
                out.update(fs.pids(join(d, "cgroup.procs")))
        return sorted(out)

    # -- parameters -------------------------------------------------------------------

    def _file(self, group: str, key: str) -> str:
        controller = key.split(".", 1)[0]
        if "." not in key or controller == "cgroup":
            raise CgroupInvalid(f"unknown parameter {key!r}")
        h = self._hierarchy(controller)
        d = self._dir(h, group)
        if not fs.is_dir(d):
            raise CgroupUnsupported(
                f"group {group!r} was created without the {controller} controller"
            )
        path = join(d, key)
        if not fs.exists(path):
            raise CgroupInvalid(f"unknown parameter {key!r} (no such file in `{d}`)")
        return path

    def set(self, group: str, key: str, value: str) -> None:
        name = self._require(group)
        fs.write(self._file(name, key), value)

    def get(self, group: str, key: str) -> str:
        name = self._require(group)
        return fs.read(self._file(name, key)).strip()

    def parameters(self, group: str) -> dict[str, str]:
        name = self._require(group)
        out: dict[str, str] = {}
        for h in self.hierarchies:
            d = self._dir(h, name)
            if not fs.is_dir(d):
                continue
            for fname in sorted(os.listdir(d)):
                f = join(d, fname)
                if (
                    os.path.isfile(f)
                    and fname.split(".")[0] in h.subsystems
                    and os.access(f, os.R_OK)
                ):
                    try:
                        out[fname] = fs.read(f).strip()
                    except (KernelError, CgroupNotFound):
                        continue  # write-only or unreadable files (e.g. memory.force_empty)
        return out

    def apply(self, group: str, resources: Resources) -> None:
        name = self._require(group)
        for key, value in self._settings(name, resources):
            fs.write(self._file(name, key), value)

    def _settings(self, group: str, r: Resources) -> list[tuple[str, str]]:
        """The (file, value) writes for `r`, in an order the kernel accepts."""
        out: list[tuple[str, str]] = []
        out += self._memory_settings(group, r)
        if r.cpu_weight is not None and r.cpu_shares is None:
            out.append(("cpu.shares", str(weight_to_shares(r.cpu_weight))))
        if r.cpu_shares is not None:
            out.append(("cpu.shares", str(r.cpu_shares)))
        if r.cpu_period is not None:
            out.append(("cpu.cfs_period_us", str(r.cpu_period)))
        if r.cpu_quota is not None:
            out.append(("cpu.cfs_quota_us", str(r.cpu_quota)))
        if r.cpuset_cpus is not None:
            out.append(("cpuset.cpus", r.cpuset_cpus))
        if r.cpuset_mems is not None:
            out.append(("cpuset.mems", r.cpuset_mems))
        if r.pids_limit is not None:
            out.append(("pids.max", "max" if r.pids_limit == UNLIMITED else str(r.pids_limit)))
        weight = r.blkio_weight
        if weight is None and r.io_weight is not None:
            weight = io_weight_to_blkio_weight(r.io_weight)
        if weight is not None:
            out.append((self._blkio_weight_file(group), str(weight)))
        for t in r.throttles:
            rate = 0 if t.rate == UNLIMITED else t.rate
            out.append((f"blkio.throttle.{t.kind}_device", f"{t.major}:{t.minor} {rate}"))
        for rule in r.devices:
            out.append(("devices.allow" if rule.allow else "devices.deny", rule.v1_line()))
        for size, limit in r.hugetlb:
            value = _UNLIMITED_BYTES if limit == UNLIMITED else str(limit)
            out.append((f"hugetlb.{size}.limit_in_bytes", value))
        if r.net_cls_classid is not None:
            out.append(("net_cls.classid", str(r.net_cls_classid)))
        out += list(r.raw)
        return out

    def _blkio_weight_file(self, group: str) -> str:
        d = self._dir(self._hierarchy("blkio"), group)
        if fs.exists(join(d, "blkio.weight")):
            return "blkio.weight"
        if fs.exists(join(d, "blkio.bfq.weight")):
            return "blkio.bfq.weight"
        raise CgroupUnsupported(
            "block I/O weight needs the CFQ or BFQ I/O scheduler (no blkio.weight here)"
        )

    def _memory_settings(self, group: str, r: Resources) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        mem, swap = r.memory_limit, r.memory_swap
        if mem == UNLIMITED and swap is None:
            swap = UNLIMITED  # lifting the memory limit lifts memory+swap too, as runc does
        if swap is not None:
            d = self._dir(self._hierarchy("memory"), group)
            if not fs.exists(join(d, "memory.memsw.limit_in_bytes")):
                raise CgroupUnsupported(
                    "a memory+swap limit needs swap accounting (memory.memsw.* is missing; "
                    "boot with swapaccount=1)"
                )
        memsw = ("memory.memsw.limit_in_bytes", _bytes(swap)) if swap is not None else None
        if mem is not None and memsw is not None:
            d = self._dir(self._hierarchy("memory"), group)
            current = int(fs.read(join(d, "memory.limit_in_bytes")))
            # The kernel requires memory <= memory+swap at every step: order the two writes.
            if swap == UNLIMITED or (swap is not None and current < swap):
                out += [memsw, ("memory.limit_in_bytes", _bytes(mem))]
            else:
                out += [("memory.limit_in_bytes", _bytes(mem)), memsw]
        elif mem is not None:
            out.append(("memory.limit_in_bytes", _bytes(mem)))
        elif memsw is not None:
            out.append(memsw)
        if r.memory_reservation is not None:
            out.append(("memory.soft_limit_in_bytes", _bytes(r.memory_reservation)))
        return out

    # -- freezer ----------------------------------------------------------------------

    def _freezer_dir(self, group: str) -> str:
        d = self._dir(self._hierarchy("freezer"), group)
        if not fs.is_dir(d):
            raise CgroupUnsupported(f"group {group!r} was created without the freezer controller")
        return d

    def freeze(self, group: str) -> None:
        d = self._freezer_dir(self._require(group))
        fs.write(join(d, "freezer.state"), "FROZEN")
        deadline = time.monotonic() + 10
        while fs.read(join(d, "freezer.state")).strip() != "FROZEN":
            if time.monotonic() > deadline:
                fs.write(join(d, "freezer.state"), "THAWED")
                raise KernelError("freeze", errno.ETIMEDOUT, str(d))
            time.sleep(0.001)
            fs.write(join(d, "freezer.state"), "FROZEN")

    def thaw(self, group: str) -> None:
        d = self._freezer_dir(self._require(group))
        fs.write(join(d, "freezer.state"), "THAWED")

    def freezer_state(self, group: str) -> str:
        d = self._freezer_dir(self._require(group))
        return fs.read(join(d, "freezer.state")).strip()

    def kill(self, group: str, sig: int = SIGKILL) -> None:
        """Signal every task in the group and its children; SIGKILL under the freezer, so
        nothing forks away meanwhile, and until the group is empty."""
        dirs = self.directories(self._require(group))
        if sig == SIGKILL:
            teardown.kill_and_wait(dirs)
        else:
            teardown.signal_all(dirs, sig)

    # -- stats ------------------------------------------------------------------------

    def stats(self, group: str) -> Stats:
        name = self._require(group)
        values: dict[str, int | None] = {}

        def maybe(controller: str) -> str | None:
            h = next((h for h in self.hierarchies if controller in h.subsystems), None)
            d = self._dir(h, name) if h else None
            return d if d is not None and fs.is_dir(d) else None

        if d := maybe("cpuacct"):
            values["cpu_usage_ns"] = int(fs.read(join(d, "cpuacct.usage")))
            if fs.exists(join(d, "cpuacct.usage_user")):
                values["cpu_user_ns"] = int(fs.read(join(d, "cpuacct.usage_user")))
                values["cpu_system_ns"] = int(fs.read(join(d, "cpuacct.usage_sys")))
            else:
                ticks = fs.read_keyed(join(d, "cpuacct.stat"))
                hz = os.sysconf("SC_CLK_TCK")
                values["cpu_user_ns"] = ticks.get("user", 0) * 1_000_000_000 // hz
                values["cpu_system_ns"] = ticks.get("system", 0) * 1_000_000_000 // hz
        if d := maybe("cpu"):
            cpu = fs.read_keyed(join(d, "cpu.stat"))
            values["cpu_throttled_periods"] = cpu.get("nr_throttled")
            values["cpu_throttled_ns"] = cpu.get("throttled_time")
        if d := maybe("memory"):
            values["memory_usage"] = int(fs.read(join(d, "memory.usage_in_bytes")))
            values["memory_peak"] = int(fs.read(join(d, "memory.max_usage_in_bytes")))
            limit = int(fs.read(join(d, "memory.limit_in_bytes")))
            values["memory_limit"] = None if limit >= (1 << 62) else limit
            values["oom_kills"] = fs.read_keyed(join(d, "memory.oom_control")).get("oom_kill")
        if d := maybe("pids"):
            values["pids_current"] = int(fs.read(join(d, "pids.current")))
            values["pids_limit"] = fs.read_int(join(d, "pids.max"))
        if d := maybe("blkio"):
            read_b, write_b = _blkio_bytes(d)
            values["io_read_bytes"], values["io_write_bytes"] = read_b, write_b
        return Stats(**values)


def _bytes(value: int | None) -> str:
    return _UNLIMITED_BYTES if value is None or value == UNLIMITED else str(value)


def _blkio_bytes(d: str) -> tuple[int, int]:
    for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"):
        path = join(d, name)
        if fs.exists(path):
            read_b = write_b = 0
            for line in fs.read(path).splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == "Read":
                    read_b += int(parts[2])
                elif len(parts) == 3 and parts[1] == "Write":
                    write_b += int(parts[2])
            return read_b, write_b
    return 0, 0


def _write_pid(path: str, pid: int) -> None:
    """Write a pid into cgroup.procs/tasks. EINVAL can mean the task is still being born
    (TASK_NEW); runc retries, so do we. ESRCH means it is gone."""
    for attempt in range(5):
        try:
            fs.write(path, str(pid))
            return
        except CgroupInvalid:
            if attempt == 4:
                raise
            time.sleep(0.03)
        except KernelError as err:
            if err.errno == errno.ESRCH:
                raise KernelError("move process", errno.ESRCH, f"pid {pid}") from err
            raise
