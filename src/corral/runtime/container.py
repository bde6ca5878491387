"""The runtime's operations (what libcontainer is to runc): create, start, run, state,
kill, delete, pause, resume, update, exec, ps, list, stats.

Each operation loads the container's state under its lock, checks the state machine,
acts, and saves. Everything a step creates is recorded before it is created, so `delete`
(with --force) can always remove what a killed `create` left behind.

The commands a container start runs (start, delete, state, kill) import only this module,
`state` and the cgroups teardown helpers; create, run and exec load `spawn` on demand.
"""

from __future__ import annotations

import errno
import os

from corral import fastjson
from corral.errors import CgroupError, ContainerError, ContainerNotFound, InvalidState, KernelError

from .state import DEFAULT_ROOT, State, StateStore, Status, current_status, process_alive, require

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from corral.cgroups import Manager, Resources

    from .config import ContainerConfig, Process

    Warn = Callable[[str], None]

SPEC_COPY = "config.json"
SIGKILL = 9


def _ignore(_: str) -> None:
    pass


class Runtime:
    def __init__(
        self, root: str = DEFAULT_ROOT, warn: Warn = _ignore, systemd_cgroup: bool = False
    ) -> None:
        self.store = StateStore(root)
        self.warn = warn
        self.systemd_cgroup = systemd_cgroup

    # -- helpers ------------------------------------------------------------------------

    def manager(self, state: State) -> Manager:
        from corral.cgroups.manager import open_manager

        return open_manager(parent=state.cgroup_parent, allow_root=True)

    def spec(self, container_id: str) -> dict[str, Any]:
        with open(os.path.join(self.store.dir(container_id), SPEC_COPY), "rb") as f:
            data: dict[str, Any] = fastjson.loads(f.read())
        return data

    def config(self, state: State) -> ContainerConfig:
        from .config import convert

        return convert(self.spec(state.id), state.bundle)

    def hook_state(self, state: State, status: str) -> dict[str, Any]:
        out = state.public(status)
        out["pid"] = state.pid
        return out

    # -- create / start / run / exec (spawn.py) -------------------------------------------

    def create(self, container_id: str, bundle: str, **options: Any) -> State:
        from .spawn import create

        return create(self, container_id, bundle, **options)

    def run(self, container_id: str, bundle: str, **options: Any) -> int:
        from .spawn import run

        return run(self, container_id, bundle, **options)

    def exec(self, container_id: str, process: Process, **options: Any) -> int:
        from .spawn import exec_process

        return exec_process(self, container_id, process, **options)

    def start(self, container_id: str) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            require(current_status(state), (Status.CREATED,), "start", container_id)
            fifo = self.store.fifo_path(container_id)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as err:
                if err.errno in (errno.ENXIO, errno.ENOENT):
                    raise InvalidState(
                        f"container {container_id!r}: its init process is gone"
                    ) from None
                raise
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            os.unlink(fifo)
            state.status = Status.RUNNING
            self.store.save(state)
        if state.has_poststart:
            self.run_warn_hooks("poststart", state, Status.RUNNING)

    def run_warn_hooks(self, kind: str, state: State, status: str) -> None:
        """poststart and poststop: a failure is a warning, and the rest goes on (spec)."""
        from .hooks import run_hooks

        try:
            config = self.config(state)
        except (OSError, ContainerError) as err:
            self.warn(f"cannot run {kind} hooks: {err}")
            return
        hooks = config.hooks.poststart if kind == "poststart" else config.hooks.poststop
        try:
            run_hooks(kind, hooks, self.hook_state(state, status))
        except ContainerError as err:
            self.warn(str(err))

    # -- queries ------------------------------------------------------------------------

    def state(self, container_id: str) -> dict[str, Any]:
        state = self.store.load(container_id)
        return state.public(current_status(state))

    def list_containers(self) -> list[dict[str, Any]]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.state(cid))
            except ContainerError:
                continue
        return out

    def pids(self, container_id: str) -> list[int]:
        from corral.cgroups import teardown

        return teardown.tasks(self.store.load(container_id).cgroup_dirs)

    def stats(self, container_id: str) -> dict[str, Any]:
        state = self.store.load(container_id)
        require(
            current_status(state),
            Status.LIVE,
            "get stats of",
            container_id,
        )
        st = self.manager(state).stats(state.cgroup_name)
        return {
            "cpu": {
                "usage": {
                    "total": st.cpu_usage_ns or 0,
                    "user": st.cpu_user_ns or 0,
                    "kernel": st.cpu_system_ns or 0,
                },
                "throttling": {
                    "throttledPeriods": st.cpu_throttled_periods or 0,
                    "throttledTime": st.cpu_throttled_ns or 0,
                },
            },
            "memory": {
                "usage": {
                    "usage": st.memory_usage or 0,
                    "max": st.memory_peak or 0,
                    "limit": st.memory_limit or 0,
                },
                "oom_kill": st.oom_kills or 0,
            },
            "pids": {"current": st.pids_current or 0, "limit": st.pids_limit or 0},
            "blkio": {"read_bytes": st.io_read_bytes or 0, "write_bytes": st.io_write_bytes or 0},
        }

    # -- signals, pause, update -----------------------------------------------------------

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            status = current_status(state)
            if all_processes:
                from corral.cgroups import teardown

                teardown.signal_all(state.cgroup_dirs, sig)
                return
            if status == Status.STOPPED:
                raise InvalidState(f"container {container_id!r} is not running")
            require(status, Status.LIVE, "kill", container_id)
            from corral.kernel.process import pidfd_open, pidfd_send_signal

            try:
                fd = pidfd_open(state.pid)
            except KernelError as err:
                if err.errno == errno.ESRCH:
                    raise InvalidState(f"container {container_id!r} is not running") from None
                raise
            try:
                # The pidfd names one process; check it is still the one we started.
                if not process_alive(state.pid, state.pid_start):
                    raise InvalidState(f"container {container_id!r} is not running")
                pidfd_send_signal(fd, sig)
            finally:
                os.close(fd)

    def pause(self, container_id: str) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            require(current_status(state), (Status.RUNNING, Status.CREATED), "pause", container_id)
            self.manager(state).freeze(state.cgroup_name)
            state.status = Status.PAUSED
            self.store.save(state)

    def resume(self, container_id: str) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            status = current_status(state)
            if status != Status.PAUSED:
                raise InvalidState(
                    f"cannot resume container {container_id!r}: it is {status}, not paused"
                )
            self.manager(state).thaw(state.cgroup_name)
            state.status = Status.RUNNING
            self.store.save(state)

    def update(self, container_id: str, resources: Resources) -> None:
        from .spawn import resources_for_host

        with self.store.lock(container_id):
            state = self.store.load(container_id)
            require(
                current_status(state),
                Status.LIVE,
                "update",
                container_id,
            )
            manager = self.manager(state)
            manager.apply(state.cgroup_name, resources_for_host(manager, resources, self.warn))

    # -- delete ---------------------------------------------------------------------------

    def delete(self, container_id: str, force: bool = False) -> bool:
        """Remove the container. Returns False if there was nothing (only with force)."""
        try:
            lock = self.store.lock(container_id).__enter__()
        except ContainerNotFound:
            if force:
                return False
            raise
        try:
            state = self.store.load(container_id)
            status = current_status(state)
            if status in (Status.RUNNING, Status.PAUSED, Status.CREATING) and not force:
                raise InvalidState(
                    f"cannot delete container {container_id!r} that is not stopped: {status} "
                    "(use --force)"
                )
            if (
                state.creator_pid
                and state.creator_pid != os.getpid()
                and process_alive(state.creator_pid, 0)
            ):
                os.kill(state.creator_pid, SIGKILL)
            self.cleanup(state)
        finally:
            lock.__exit__()
        if state.has_poststop:
            self.run_warn_hooks("poststop", state, Status.STOPPED)
        self.store.remove(container_id)
        return True

    def cleanup(self, state: State, quiet: bool = False) -> None:
        """Kill what is left and remove the cgroup (from the directories recorded at create)."""
        from corral.cgroups import teardown

        if state.pid and process_alive(state.pid, state.pid_start):
            try:
                os.kill(state.pid, SIGKILL)
            except ProcessLookupError:
                pass
        try:
            teardown.kill_and_wait(state.cgroup_dirs)
            if state.cgroup_made:
                teardown.remove(state.cgroup_dirs)
        except CgroupError as err:
            if not quiet:
                raise
            self.warn(f"cleanup of cgroup {state.cgroup_name}: {err}")
        if quiet:
            self.store.remove(state.id)
