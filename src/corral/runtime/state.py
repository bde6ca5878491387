"""Runtime state on disk: one directory per container under --root, written atomically
(tmp + rename) under a per-container lock, and the container's status worked out from it
and from the kernel (a vanished or zombie pid, or a recycled one, means stopped).

This module is on every command's path (start, state, delete...): it imports only what
a Python process already has loaded, plus `fcntl` and Corral's small `fastjson`.
"""

from __future__ import annotations

import fcntl
import os
import time

from corral import fastjson
from corral.errors import ContainerError, ContainerExists, ContainerNotFound, InvalidState
from corral.kernel.identity import process_alive as process_alive  # for the runtime
from corral.structs import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/corral"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")


class Status:
    """The runtime-spec's container states (plain strings: `enum` is slow to import)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    LIVE = (CREATED, RUNNING, PAUSED)  # a process exists: it can be signalled, updated, read


def validate_id(container_id: str) -> str:
    if not container_id:
        raise ContainerError("container id is empty")
    if "/" in container_id or ".." in container_id or container_id == ".":
        raise ContainerError(
            f"invalid container id {container_id!r}: it may not contain '/' or '..'"
        )
    if (
        len(container_id) > 1024
        or not _ID_CHARS.issuperset(container_id)
        or not container_id[0].isalnum()
    ):
        raise ContainerError(
            f"invalid container id {container_id!r}: use letters, digits and _.+- "
            "(starting with a letter or digit)"
        )
    return container_id


@record
class State:
    """What Corral records about a container. Saved before each kernel object is made, so
    that `delete` can always find and remove everything."""

    id: str
    bundle: str
    rootfs: str
    status: str = Status.CREATING
    pid: int = 0
    pid_start: int = 0  # /proc/PID/stat start time: pid + start time name one process for good
    creator_pid: int = 0  # the `create` process, while it runs
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    oci_version: str = ""
    cgroup_parent: str = ""
    cgroup_name: str = ""
    cgroup_made: bool = False
    # The group's directory in each hierarchy, recorded at create: delete needs no detection.
    cgroup_dirs: dict[str, str] = field(default_factory=dict)
    has_poststart: bool = False
    has_poststop: bool = False
    owner: str = ""

    def public(self, status: str) -> dict[str, Any]:
        """The runtime-spec's state object (what `state` prints and hooks read)."""
        out: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid if status != Status.STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class _Lock:
    """flock on the container's directory: one command at a time per container."""

    def __init__(self, path: str, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self.fd = -1

    def __enter__(self) -> _Lock:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.container_id!r} does not exist") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class StateStore:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, validate_id(container_id))

    def create_dir(self, container_id: str) -> str:
        """Claim the id: mkdir is atomic, so two creates of one id cannot both win."""
        path = self.dir(container_id)
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as err:
            raise ContainerError(f"cannot create state root `{self.root}`: {err.strerror}") from err
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise ContainerExists(f"container {container_id!r} already exists") from None
        except OSError as err:
            raise ContainerError(f"cannot create `{path}`: {err.strerror}") from err
        return path

    def lock(self, container_id: str) -> _Lock:
        return _Lock(self.dir(container_id), container_id)

    def save(self, state: State) -> None:
        path = os.path.join(self.dir(state.id), STATE_FILE)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, fastjson.dumps(asdict(state)).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def load(self, container_id: str) -> State:
        path = os.path.join(self.dir(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            if os.path.isdir(self.dir(container_id)):
                # A create killed before its first write: only the directory exists.
                return State(id=container_id, bundle="", rootfs="", status=Status.CREATING)
            raise ContainerNotFound(f"container {container_id!r} does not exist") from None
        except (OSError, ValueError) as err:
            raise ContainerError(
                f"cannot read state of {container_id!r} (`{path}`): {err}"
            ) from err
        known = set(State.__record_fields__)  # type: ignore[attr-defined]
        return State(**{k: v for k, v in data.items() if k in known})

    def remove(self, container_id: str) -> None:
        """The directory holds only files Corral wrote (no subdirectories)."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                validate_id(name)
            except ContainerError:
                continue
            if os.path.isdir(os.path.join(self.root, name)):
                out.append(name)
        return sorted(out)

    def fifo_path(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), FIFO_NAME)


def current_status(state: State) -> str:
    if state.status == Status.CREATING:
        if state.creator_pid and process_alive(state.creator_pid, 0):
            return Status.CREATING
        return Status.STOPPED  # its `create` died: only cleanup is left
    if not process_alive(state.pid, state.pid_start):
        return Status.STOPPED
    return state.status


def require(status: str, allowed: tuple[str, ...], action: str, container_id: str) -> None:
    if status not in allowed:
        raise InvalidState(f"cannot {action} container {container_id!r}: it is {status}")
