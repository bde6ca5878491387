"""Runtime state on disk: one directory per container under --root, written atomically
(tmp + rename) under a per-container lock, and the container's status worked out from it
and from the kernel (a vanished or zombie pid, or a recycled one, means stopped)."""

from __future__ import annotations

import enum
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.errors import ContainerError, ContainerExists, ContainerNotFound, InvalidState

DEFAULT_ROOT = "/run/corral"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$")


class Status(enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


def validate_id(container_id: str) -> str:
    if not container_id:
        raise ContainerError("container id is empty")
    if "/" in container_id or container_id in (".", "..") or ".." in container_id:
        raise ContainerError(
            f"invalid container id {container_id!r}: it may not contain '/' or '..'"
        )
    if not _ID.match(container_id):
        raise ContainerError(
            f"invalid container id {container_id!r}: use letters, digits and _.+- "
            "(starting with a letter or digit)"
        )
    return container_id


@dataclass
class State:
    """What Corral records about a container. Saved before each kernel object is made, so
    that `delete` can always find and remove everything."""

    id: str
    bundle: str
    rootfs: str
    status: str = Status.CREATING.value
    pid: int = 0
    pid_start: int = 0  # /proc/PID/stat start time: pid + start time name one process for good
    creator_pid: int = 0  # the `create` process, while it runs
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    oci_version: str = ""
    cgroup_parent: str = ""
    cgroup_name: str = ""
    cgroup_made: bool = False
    has_poststart: bool = False
    has_poststop: bool = False
    owner: str = ""

    def public(self, status: Status) -> dict[str, Any]:
        """The runtime-spec's state object (what `state` prints and hooks read)."""
        out: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid if status not in (Status.STOPPED,) else 0,
            "status": status.value,
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


class StateStore:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, validate_id(container_id))

    def _ensure_root(self) -> None:
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as err:
            raise ContainerError(f"cannot create state root `{self.root}`: {err.strerror}") from err

    def create_dir(self, container_id: str) -> str:
        """Claim the id: mkdir is atomic, so two creates of one id cannot both win."""
        self._ensure_root()
        path = self.dir(container_id)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise ContainerExists(f"container {container_id!r} already exists") from None
        except OSError as err:
            raise ContainerError(f"cannot create `{path}`: {err.strerror}") from err
        return path

    @contextmanager
    def lock(self, container_id: str) -> Iterator[None]:
        path = self.dir(container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(f"container {container_id!r} does not exist") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self, state: State) -> None:
        path = os.path.join(self.dir(state.id), STATE_FILE)
        tmp = path + ".tmp"
        data = json.dumps(asdict(state)).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def load(self, container_id: str) -> State:
        path = os.path.join(self.dir(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            if os.path.isdir(self.dir(container_id)):
                # A create killed before its first write: only the directory exists.
                return State(id=container_id, bundle="", rootfs="", status=Status.CREATING.value)
            raise ContainerNotFound(f"container {container_id!r} does not exist") from None
        except (OSError, ValueError) as err:
            raise ContainerError(
                f"cannot read state of {container_id!r} (`{path}`): {err}"
            ) from err
        known = {f for f in State.__dataclass_fields__}
        return State(**{k: v for k, v in data.items() if k in known})

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self.dir(container_id), ignore_errors=True)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(
            n for n in names if _ID.match(n) and os.path.isdir(os.path.join(self.root, n))
        )

    def fifo_path(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), FIFO_NAME)


def process_alive(pid: int, start: int) -> bool:
    """True if `pid` is still the process that started at `start`, and not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return False
    return start == 0 or int(rest[19]) == start


def current_status(state: State) -> Status:
    recorded = Status(state.status)
    if recorded is Status.CREATING:
        if state.creator_pid and process_alive(state.creator_pid, 0):
            return Status.CREATING
        return Status.STOPPED  # its `create` died: only cleanup is left
    if not process_alive(state.pid, state.pid_start):
        return Status.STOPPED
    return recorded


def require(status: Status, allowed: tuple[Status, ...], action: str, container_id: str) -> None:
    if status not in allowed:
        raise InvalidState(f"cannot {action} container {container_id!r}: it is {status.value}")
