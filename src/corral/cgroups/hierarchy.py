"""The article's first two steps on a v1 host: make a hierarchy and mount it with chosen
subsystems attached, and its rules about which mounts the kernel allows.

Rule 1: a hierarchy may have one or more subsystems attached (or none: a named hierarchy).
Rule 2: a subsystem already attached to one hierarchy cannot be attached to a second
hierarchy that has other subsystems. (Mounting the very same set again is allowed: that is
the same hierarchy seen at a second mount point.)

Corral remembers the mounts it made (a small JSON registry under its state root) and only
ever unmounts those: the host's own hierarchies are never touched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

from corral.errors import CgroupInvalid, CgroupUnsupported, KernelError, SubsystemBusy
from corral.kernel.mount import MNT_DETACH, mount, umount2
from corral.structs import record

from .layout import HostLayout, detect

DEFAULT_STATE_ROOT = Path(os.environ.get("CORRAL_ROOT", "/run/corral"))


@record(frozen=True)
class MountPlan:
    subsystems: tuple[str, ...]
    name: str | None

    @property
    def options(self) -> str:
        opts = list(self.subsystems)
        if self.name:
            opts.append(f"name={self.name}")
        if not self.subsystems:
            opts.insert(0, "none")
        return ",".join(opts)


def check_rule_two(layout: HostLayout, subsystems: list[str], name: str | None) -> MountPlan:
    """Refuse, in the article's words, a mount the kernel would refuse; also unknown names."""
    known = {s.name: s for s in layout.subsystems}
    for s in subsystems:
        if s not in known:
            raise CgroupInvalid(f"unknown subsystem {s!r} (see `corral cgroup subsystems`)")
        if not known[s].enabled:
            raise CgroupUnsupported(f"subsystem {s!r} is disabled in this kernel")
    if not subsystems and not name:
        raise CgroupInvalid("a hierarchy with no subsystems needs a name (--name)")
    wanted = set(subsystems)
    for s in subsystems:
        hid = known[s].hierarchy_id
        if hid == 0:
            continue
        # /proc/cgroups is the truth: a hierarchy can outlive its last mount.
        siblings = {x.name for x in layout.subsystems if x.hierarchy_id == hid}
        h = layout.hierarchy_of(s)
        if h is not None:
            siblings |= set(h.subsystems)
        if siblings != wanted:
            where = f"mounted at {h.mountpoint}" if h else "no longer mounted, but still alive"
            raise SubsystemBusy(
                f"cannot attach {','.join(subsystems)}: subsystem {s!r} is already attached to "
                f"hierarchy {hid} ({','.join(sorted(siblings))}, {where}), and a subsystem "
                "attached to one hierarchy cannot be attached to a second hierarchy that has "
                f"other subsystems (rule 2). Mount exactly '{','.join(sorted(siblings))}' to see "
                "that same hierarchy again, or choose subsystems that are not yet attached."
            )
    return MountPlan(tuple(subsystems), name)


class MountRegistry:
    """The cgroup mounts Corral made, so that only those are ever unmounted."""

    def __init__(self, state_root: Path = DEFAULT_STATE_ROOT) -> None:
        self.path = state_root / "cgroup-mounts.json"

    def _load(self) -> list[dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            raise CgroupInvalid(
                f"cannot read Corral's mount registry `{self.path}`: {err}"
            ) from err
        return data if isinstance(data, list) else []

    def _save(self, entries: list[dict[str, object]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        os.replace(tmp, self.path)

    def _locked(self) -> int:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def entries(self) -> list[dict[str, object]]:
        return self._load()

    def add(self, path: Path, plan: MountPlan, made_dir: bool) -> None:
        fd = self._locked()
        try:
            entries = [e for e in self._load() if e.get("path") != str(path)]
            entries.append({"path": str(path), "options": plan.options, "made_dir": made_dir})
            self._save(entries)
        finally:
            os.close(fd)

    def remove(self, path: Path) -> bool:
        fd = self._locked()
        try:
            entries = self._load()
            kept = [e for e in entries if e.get("path") != str(path)]
            self._save(kept)
            return len(kept) != len(entries)
        finally:
            os.close(fd)

    def find(self, path: Path) -> dict[str, object] | None:
        return next((e for e in self._load() if e.get("path") == str(path)), None)


def mount_hierarchy(
    path: Path,
    subsystems: list[str],
    name: str | None = None,
    *,
    layout: HostLayout | None = None,
    registry: MountRegistry | None = None,
) -> MountPlan:
    """Steps 1 and 2: create a hierarchy with `subsystems` attached and mount it at `path`."""
    layout = layout or detect()
    plan = check_rule_two(layout, subsystems, name)
    registry = registry or MountRegistry()
    path = path.absolute()
    made_dir = False
    if not path.exists():
        path.mkdir(parents=True)
        made_dir = True
    try:
        mount("cgroup", path, "cgroup", 0, plan.options)
    except KernelError as err:
        if made_dir:
            path.rmdir()
        if err.errno == errno.EBUSY:
            raise SubsystemBusy(
                f"the kernel refused to attach {plan.options} at {path}: a subsystem is already "
                "attached to another hierarchy with other subsystems, or is in use on the "
                "unified (v2) hierarchy (rule 2)"
            ) from err
        raise
    registry.add(path, plan, made_dir)
    return plan


def unmount_hierarchy(path: Path, registry: MountRegistry | None = None) -> None:
    """Unmount a hierarchy Corral mounted. Anything else is refused."""
    registry = registry or MountRegistry()
    path = path.absolute()
    entry = registry.find(path)
    if entry is None:
        raise CgroupInvalid(
            f"`{path}` was not mounted by `corral cgroup mount`; Corral never unmounts "
            "the host's cgroup hierarchies"
        )
    try:
        umount2(path, MNT_DETACH)
    except KernelError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):  # already gone
            raise
    registry.remove(path)
    if entry.get("made_dir"):
        try:
            path.rmdir()
        except OSError:
            pass
