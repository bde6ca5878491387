"""The one interface every cgroup backend implements, and the factory that picks one.

A group is named by a path relative to Corral's *parent* group. The parent sits, by
default, below the cgroup of the process running Corral (so Corral works nested and in a
delegated v2 subtree); `parent` may also be an absolute cgroup path. Nothing outside the
parent is ever created, written, frozen or removed.
"""

from __future__ import annotations

import os
import time

from corral.errors import CgroupBusy, CgroupInvalid, CgroupNotFound
from corral.structs import asdict, record

from .layout import Hierarchy, HostLayout, Mode, detect
from .paths import validate_group

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from .resources import Resources

SIGKILL = 9  # the `signal` module imports `enum`: a number keeps it off the start path

DEFAULT_PARENT = "corral"
PARENT_ENV = "CORRAL_CGROUP_PARENT"


class FreezerState:
    THAWED = "THAWED"
    FREEZING = "FREEZING"
    FROZEN = "FROZEN"


@record(frozen=True)
class Stats:
    """Usage figures with one meaning on every backend. None: the host does not report it."""

    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_peak: int | None = None
    memory_limit: int | None = None  # None: no limit
    oom_events: int | None = None  # times the group hit its limit and the OOM killer ran (v2)
    oom_kills: int | None = None  # processes the OOM killer killed in the group
    pids_current: int | None = None
    pids_limit: int | None = None  # None: no limit
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


if TYPE_CHECKING:

    class Manager(Protocol):
        """What Corral's upper layers need from a cgroup backend."""

        mode: str
        layout: HostLayout

        def create(
            self,
            group: str,
            resources: Resources | None = None,
            controllers: list[str] | None = None,
        ) -> None: ...
        def exists(self, group: str) -> bool: ...
        def delete(self, group: str, *, force: bool = False) -> None: ...
        def add_process(self, group: str, pid: int) -> None: ...
        def add_thread(self, group: str, tid: int) -> None: ...
        def tasks(self, group: str, *, recursive: bool = False) -> list[int]: ...
        def apply(self, group: str, resources: Resources) -> None: ...
        def set(self, group: str, key: str, value: str) -> None: ...
        def get(self, group: str, key: str) -> str: ...
        def parameters(self, group: str) -> dict[str, str]: ...
        def freeze(self, group: str) -> None: ...
        def thaw(self, group: str) -> None: ...
        def freezer_state(self, group: str) -> str: ...
        def kill(self, group: str, sig: int = SIGKILL) -> None: ...
        def stats(self, group: str) -> Stats: ...
        def children(self, group: str | None = None) -> list[str]: ...
        def directories(self, group: str) -> dict[str, str]: ...
        def planned_directories(self, group: str) -> dict[str, str]: ...
        def cgroup_path(self, group: str) -> str: ...
        def remove_parent(self) -> None: ...
        def wait_empty(self, group: str, timeout: float = 10.0) -> None: ...


def host_dir(h: Hierarchy, cgroup_path: str) -> str:
    """The directory of an absolute cgroup path ('/a/b') in a mounted hierarchy."""
    root = h.root.rstrip("/")
    rel = cgroup_path
    if root and (cgroup_path == root or cgroup_path.startswith(root + "/")):
        rel = cgroup_path[len(root) :]
    return os.path.join(h.mountpoint, rel.lstrip("/"))


def parent_cgroup_path(layout: HostLayout, h: Hierarchy, parent: str) -> str:
    """Corral's parent as an absolute cgroup path in hierarchy `h`.

    Absolute parents ('/a/b', or '/' for the hierarchy's root) start at the root; relative
    ones ('corral', or '' for the caller's own cgroup) below the cgroup of this process.
    """
    clean = parent.strip("/")
    if parent.startswith("/"):
        return "/" + validate_group(clean) if clean else "/"
    own = layout.own_path(h).rstrip("/")
    return f"{own}/{validate_group(clean)}" if clean else (own or "/")


def join_cgroup(parent_path: str, group: str) -> str:
    return parent_path.rstrip("/") + "/" + group


def resolve_parent(parent: str | None, allow_root: bool = False) -> str:
    value = parent if parent is not None else (os.environ.get(PARENT_ENV) or DEFAULT_PARENT)
    if not value.strip("/") and not allow_root:
        raise CgroupInvalid("the cgroup parent may not be the root of the hierarchy")
    return value


class BaseManager:
    """Shared behaviour: group validation, waiting for groups to empty, force delete."""

    mode: str
    layout: HostLayout
    parent: str

    # Backends implement these.
    def tasks(self, group: str, *, recursive: bool = False) -> list[int]:
        raise NotImplementedError

    def kill(self, group: str, sig: int = SIGKILL) -> None:
        raise NotImplementedError

    def exists(self, group: str) -> bool:
        raise NotImplementedError

    def _group(self, group: str) -> str:
        return validate_group(group)

    def _require(self, group: str) -> str:
        name = validate_group(group)
        if not self.exists(name):
            raise CgroupNotFound(f"no such group {name!r} under Corral's parent {self.parent!r}")
        return name

    def _ensure_empty(self, group: str, force: bool) -> None:
        pids = self.tasks(group, recursive=True)
        if not pids:
            return
        if not force:
            shown = " ".join(map(str, pids[:10])) + (" ..." if len(pids) > 10 else "")
            raise CgroupBusy(
                f"group {group!r} still has {len(pids)} task(s) ({shown}); "
                "use --force to kill them first"
            )
        self.kill(group, SIGKILL)
        self.wait_empty(group)

    def wait_empty(self, group: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tasks(group, recursive=True):
            if time.monotonic() > deadline:
                raise CgroupBusy(f"tasks in group {group!r} did not exit within {timeout:.0f}s")
            time.sleep(0.005)


if not TYPE_CHECKING:
    # The protocol exists for type checkers; at run time its name means the shared base.
    Manager = BaseManager


def open_manager(
    layout: HostLayout | None = None, parent: str | None = None, *, allow_root: bool = False
) -> Manager:
    """The backend for this host: v2 on a unified host, v1 on v1 and hybrid hosts.

    allow_root lets an OCI caller's cgroupsPath name a group directly below a hierarchy's
    root or its own cgroup ('/id', 'id'); `corral cgroup` never allows it, since its verbs
    list and delete everything below the parent.
    """
    layout = layout or detect()
    name = resolve_parent(parent, allow_root)
    if layout.mode == Mode.V2:
        from .v2 import V2Manager

        return V2Manager(layout, name)
    from .v1 import V1Manager

    return V1Manager(layout, name)
