"""What the host's cgroups look like: mode (v1, hybrid, v2), hierarchies and subsystems.

Detected, not assumed: from /proc/self/mountinfo (what is mounted where, with which
subsystems), /proc/cgroups (which subsystems exist and in which hierarchy) and statfs of
/sys/fs/cgroup (a cgroup2 filesystem there means a unified-only host). /proc is a
parameter so the parsing is testable over fixture files.
"""

from __future__ import annotations

import os

from corral.errors import CgroupUnsupported, KernelError
from corral.kernel.mount import CGROUP2_SUPER_MAGIC, statfs_type
from corral.structs import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Mode:
    """The host's cgroup mode (plain strings: `enum` is too slow to import on the start path)."""

    V1 = "v1"
    HYBRID = "hybrid"
    V2 = "v2"


@record(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy.

    For v1: `subsystems` are the controllers attached to it (rule 1: one or more), `name` a
    named hierarchy's name (name=systemd). For v2: the controllers it offers.
    """

    id: int  # the kernel's hierarchy id (0 for the unified hierarchy)
    version: int
    mountpoint: str
    root: str  # the part of the hierarchy this mount shows ('/' unless bind-mounted / cgroupns)
    subsystems: tuple[str, ...]
    name: str | None = None
    device: str = ""  # major:minor of the superblock: one per hierarchy

    @property
    def label(self) -> str:
        parts = list(self.subsystems)
        if self.name:
            parts.append(f"name={self.name}")
        return ",".join(parts) if parts else "(none)"


@record(frozen=True)
class Subsystem:
    """One line of /proc/cgroups."""

    name: str
    hierarchy_id: int  # 0: not attached to a v1 hierarchy (free for v2 or a new mount)
    num_cgroups: int
    enabled: bool


@record(frozen=True)
class HostLayout:
    mode: str  # a Mode value
    hierarchies: tuple[Hierarchy, ...]  # v1 hierarchies first, then the unified one
    subsystems: tuple[Subsystem, ...]
    own_paths: dict[str, str]  # hierarchy key (see key_of) -> this process's cgroup path

    @property
    def v1(self) -> tuple[Hierarchy, ...]:
        return tuple(h for h in self.hierarchies if h.version == 1)

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    def hierarchy_of(self, subsystem: str) -> Hierarchy | None:
        """The v1 hierarchy a subsystem is attached to (rule 3's 'one group per hierarchy')."""
        return next((h for h in self.v1 if subsystem in h.subsystems), None)

    def own_path(self, hierarchy: Hierarchy) -> str:
        return self.own_paths.get(key_of(hierarchy), "/")


def key_of(h: Hierarchy) -> str:
    """How /proc/PID/cgroup names a hierarchy: '' for v2, 'cpu,cpuacct' or 'name=systemd'."""
    if h.version == 2:
        return ""
    if h.name and not h.subsystems:
        return f"name={h.name}"
    parts = list(h.subsystems) + ([f"name={h.name}"] if h.name else [])
    return ",".join(parts)


def parse_proc_cgroups(text: str) -> list[Subsystem]:
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, hid, num, enabled = line.split()[:4]
        out.append(Subsystem(name, int(hid), int(num), enabled == "1"))
    return out


def parse_proc_pid_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {hierarchy key: path}; the key is '' for v2."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        _hid, controllers, path = line.split(":", 2)
        out[controllers] = path
    return out


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def parse_mountinfo(
    text: str, subsystems: list[Subsystem], controllers_v2: Callable[[str], tuple[str, ...]]
) -> list[Hierarchy]:
    """The cgroup mounts in mountinfo, one Hierarchy per superblock (first mount wins)."""
    known = {s.name: s for s in subsystems}
    seen: set[str] = set()
    out: list[Hierarchy] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        fstype, _source, superopts = [*right.split(), "", ""][:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        device, root, mountpoint = fields[2], _unescape(fields[3]), _unescape(fields[4])
        if device in seen:
            continue
        seen.add(device)
        if fstype == "cgroup2":
            out.append(Hierarchy(0, 2, mountpoint, root, controllers_v2(mountpoint), None, device))
            continue
        subs: list[str] = []
        name = None
        for opt in superopts.split(","):
            if opt.startswith("name="):
                name = opt[5:]
            elif opt in known:
                subs.append(opt)
        hid = known[subs[0]].hierarchy_id if subs else 0
        out.append(Hierarchy(hid, 1, mountpoint, root, tuple(subs), name, device))
    out.sort(key=lambda h: (h.version, h.id))
    return out


def _read_v2_controllers(mountpoint: str) -> tuple[str, ...]:
    try:
        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as err:
        raise KernelError("read", err.errno or 0, path) from err


def detect(proc: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> HostLayout:
    """Read the host's cgroup layout."""
    subsystems = (
        parse_proc_cgroups(_read(f"{proc}/cgroups")) if os.path.exists(f"{proc}/cgroups") else []
    )
    hierarchies = parse_mountinfo(_read(f"{proc}/self/mountinfo"), subsystems, _read_v2_controllers)
    own = parse_proc_pid_cgroup(_read(f"{proc}/self/cgroup"))
    has_v1 = any(h.version == 1 and h.subsystems for h in hierarchies)
    has_v2 = any(h.version == 2 for h in hierarchies)
    try:
        unified_at_root = statfs_type(cgroup_root) == CGROUP2_SUPER_MAGIC
    except KernelError:
        unified_at_root = False
    if unified_at_root or (has_v2 and not has_v1):
        mode = Mode.V2
    elif has_v1 and has_v2:
        mode = Mode.HYBRID
    elif has_v1:
        mode = Mode.V1
    else:
        raise CgroupUnsupported(f"no cgroup filesystem is mounted (checked {proc}/self/mountinfo)")
    return HostLayout(mode, tuple(hierarchies), tuple(subsystems), own)
