"""The runtime's operations (what libcontainer is to runc): create, start, run, state,
kill, delete, pause, resume, update, exec, ps, list, stats.

Each operation loads the container's state under its lock, checks the state machine,
acts, and saves. Everything a step creates is recorded before it is created, so `delete`
(with --force) can always remove what a killed `create` left behind.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from corral.cgroups import Manager, Mode, Resources, open_manager
from corral.errors import (
    CgroupError,
    ConfigError,
    ContainerError,
    ContainerNotFound,
    InvalidState,
    KernelError,
)
from corral.kernel import prctl
from corral.kernel.process import pidfd_open, pidfd_send_signal, process_start_time

from .config import ContainerConfig, Process, convert, load_bundle
from .init import InitContext, setup_process
from .state import (
    DEFAULT_ROOT,
    State,
    StateStore,
    Status,
    current_status,
    now_rfc3339,
    process_alive,
    require,
)
from .sync import Channel, SyncError

SPEC_COPY = "config.json"
Warn = Callable[[str], None]


def _ignore(_: str) -> None:
    pass


def cgroup_location(
    cgroups_path: str, container_id: str, systemd: bool, warn: Warn
) -> tuple[str, str]:
    """linux.cgroupsPath -> (parent, group name) for the cgroups layer.

    '' -> Corral's default parent, group = id; '/a/b/c' -> parent '/a/b' (from the root);
    'a/b' -> parent 'a' below the runtime's own cgroup (runc's meaning); the systemd form
    'slice:prefix:name' -> '/slice/prefix-name.scope' (there is no systemd driver).
    """
    path = cgroups_path
    if ":" in path:
        slice_, _, rest = path.partition(":")
        prefix, _, name = rest.partition(":")
        if systemd:
            warn("--systemd-cgroup: Corral has no systemd cgroup driver; using cgroupfs")
        path = f"/{slice_ or 'system.slice'}/{prefix + '-' if prefix else ''}{name}.scope"
    if not path:
        return (os.environ.get("CORRAL_CGROUP_PARENT") or "corral"), container_id
    head, _, name = path.rstrip("/").rpartition("/")
    if not name or name == "..":
        raise ConfigError(f"config.json: linux.cgroupsPath: invalid path {cgroups_path!r}")
    if path.startswith("/"):
        return head or "/", name
    return head, name


class Runtime:
    def __init__(
        self, root: str = DEFAULT_ROOT, warn: Warn = _ignore, systemd_cgroup: bool = False
    ) -> None:
        self.store = StateStore(root)
        self.warn = warn
        self.systemd_cgroup = systemd_cgroup

    # -- helpers ------------------------------------------------------------------------

    def _manager(self, state: State) -> Manager:
        return open_manager(parent=state.cgroup_parent, allow_root=True)

    def _spec(self, container_id: str) -> dict[str, Any]:
        with open(os.path.join(self.store.dir(container_id), SPEC_COPY), "rb") as f:
            data: dict[str, Any] = json.loads(f.read())
        return data

    def _config(self, state: State) -> ContainerConfig:
        return convert(self._spec(state.id), state.bundle)

    def _status(self, state: State) -> Status:
        return current_status(state)

    def hook_state(self, state: State, status: Status) -> dict[str, Any]:
        out = state.public(status)
        out["pid"] = state.pid
        return out

    def _resources_for_host(self, manager: Manager, r: Resources) -> Resources:
        if manager.mode is Mode.V2 and r.devices:
            self.warn("device rules are not enforced on cgroup v2 yet (they need an eBPF program)")
            r = replace(r, devices=())
        if manager.mode is Mode.V2 and r.net_cls_classid is not None:
            self.warn("linux.resources.network.classID is ignored on cgroup v2")
            r = replace(r, net_cls_classid=None)
        return r

    # -- create / start / run -----------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: str,
        *,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        preserve_fds: int = 0,
        console_pair: socket.socket | None = None,
    ) -> State:
        spec, bundle = load_bundle(bundle)
        config = convert(spec, bundle)
        if config.process is None:
            raise ConfigError("config.json: process: required to create a container")
        if config.seccomp is not None:
            from .seccomp import validate

            validate(config.seccomp)
        parent, name = cgroup_location(
            config.cgroups_path, container_id, self.systemd_cgroup, self.warn
        )
        self.store.create_dir(container_id)
        state = State(
            id=container_id,
            bundle=bundle,
            rootfs=config.root,
            creator_pid=os.getpid(),
            created=now_rfc3339(),
            annotations=config.annotations,
            oci_version=config.oci_version,
            cgroup_parent=parent,
            cgroup_name=name,
            cgroup_made=True,  # recorded before the group exists: delete tolerates its absence
            has_poststart=bool(config.hooks.poststart),
            has_poststop=bool(config.hooks.poststop),
        )
        init_pid = 0
        try:
            with open(os.path.join(self.store.dir(container_id), SPEC_COPY), "wb") as f:
                f.write(json.dumps(spec).encode())
            self.store.save(state)
            manager = open_manager(parent=parent, allow_root=True)
            existed = manager.exists(name)
            manager.create(name, self._resources_for_host(manager, config.resources))
            if existed:
                state.cgroup_made = False  # joined a group someone else made: never delete it
                self.store.save(state)
            fifo = self.store.fifo_path(container_id)
            os.mkfifo(fifo, 0o600)
            console = console_pair
            if console is None and console_socket:
                console = _connect_console(console_socket)
            init_pid = self._spawn(
                state, config, manager, name, fifo, console, no_pivot, preserve_fds
            )
            state.status = Status.CREATED.value
            state.creator_pid = 0
            self.store.save(state)
            if pid_file:
                write_pid_file(pid_file, init_pid)
            return state
        except BaseException:
            if init_pid:
                try:
                    os.kill(init_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._cleanup(state, quiet=True)
            raise

    def _spawn(
        self,
        state: State,
        config: ContainerConfig,
        manager: Manager,
        group: str,
        fifo: str,
        console: socket.socket | None,
        no_pivot: bool,
        preserve_fds: int,
    ) -> int:
        assert config.process is not None
        ours, theirs = Channel.pair()
        cgroup_dirs = {label: str(path) for label, path in manager.directories(group).items()}
        ctx = InitContext(
            config=config,
            process=config.process,
            channel=theirs,
            manager=manager,
            group=group,
            # Opened here, before any user namespace: init may not be able to reach it later.
            fifo_fd=os.open(fifo, os.O_RDWR | os.O_CLOEXEC),
            console=console,
            no_pivot=no_pivot,
            preserve_fds=preserve_fds,
            cgroup_dirs=cgroup_dirs,
            seccomp=config.seccomp,
            state=self.hook_state(state, Status.CREATING),
        )
        setup_pid = os.fork()
        if setup_pid == 0:
            ours.close()
            setup_process(ctx)
        theirs.close()
        os.close(ctx.fifo_fd)
        if console is not None:
            console.close()
        init_pid = 0
        try:
            while True:
                try:
                    msg = ours.recv()
                except SyncError:
                    raise ContainerError("the container's init process died during setup") from None
                kind = msg["type"]
                if kind == "idmap":
                    _write_id_maps(int(msg["pid"]), config)
                    ours.send("idmap-done")
                elif kind == "pid":
                    init_pid = int(msg["pid"])
                    state.pid = init_pid
                    state.pid_start = process_start_time(init_pid)
                    self.store.save(state)  # recorded before anything else can go wrong
                elif kind == "hooks":
                    from .hooks import run_hooks

                    hook_state = self.hook_state(state, Status.CREATING)
                    try:
                        run_hooks("prestart", config.hooks.prestart, hook_state)
                        run_hooks("createRuntime", config.hooks.create_runtime, hook_state)
                    except ContainerError as err:
                        ours.send("error", message=str(err))
                        raise
                    ours.send("hooks-done")
                elif kind == "warning":
                    self.warn(str(msg["message"]))
                elif kind == "ready":
                    break
                elif kind == "error":
                    raise ContainerError(str(msg["message"]))
        finally:
            ours.close()
            os.waitpid(setup_pid, 0)
        return init_pid

    def start(self, container_id: str) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            require(self._status(state), (Status.CREATED,), "start", container_id)
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
            state.status = Status.RUNNING.value
            self.store.save(state)
        if state.has_poststart:
            self._run_warn_hooks("poststart", state, Status.RUNNING)

    def _run_warn_hooks(self, kind: str, state: State, status: Status) -> None:
        from .hooks import run_hooks

        try:
            config = self._config(state)
        except (OSError, ContainerError) as err:
            self.warn(f"cannot run {kind} hooks: {err}")
            return
        hooks = config.hooks.poststart if kind == "poststart" else config.hooks.poststop
        try:
            run_hooks(kind, hooks, self.hook_state(state, status))
        except ContainerError as err:
            self.warn(str(err))

    def run(
        self,
        container_id: str,
        bundle: str,
        *,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        preserve_fds: int = 0,
        keep: bool = False,
    ) -> int:
        """create + start (+ wait + delete unless detached). Returns the exit code."""
        if not detach:
            prctl.set_child_subreaper(True)  # init is re-parented to us: we can wait for it
        proxy = None
        console_pair = None
        spec, _ = load_bundle(bundle)
        wants_tty = bool((spec.get("process") or {}).get("terminal"))
        if wants_tty and not console_socket and not detach:
            proxy, console_pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            state = self.create(
                container_id,
                bundle,
                pid_file=pid_file,
                console_socket=console_socket,
                no_pivot=no_pivot,
                preserve_fds=preserve_fds,
                console_pair=console_pair,
            )
        except BaseException:
            if proxy is not None:
                proxy.close()
            raise
        master = None
        if proxy is not None:
            from .console import receive_master

            master = receive_master(proxy)
            proxy.close()
        try:
            self.start(container_id)
        except BaseException:
            self.delete(container_id, force=True)
            raise
        if detach:
            return 0
        code = wait_foreground(state.pid, master)
        if not keep:
            self.delete(container_id, force=True)
        return code

    # -- queries ------------------------------------------------------------------------

    def state(self, container_id: str) -> dict[str, Any]:
        state = self.store.load(container_id)
        return state.public(self._status(state))

    def list_containers(self) -> list[dict[str, Any]]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.state(cid))
            except ContainerError:
                continue
        return out

    def pids(self, container_id: str) -> list[int]:
        state = self.store.load(container_id)
        manager = self._manager(state)
        if not manager.exists(state.cgroup_name):
            return []
        return manager.tasks(state.cgroup_name, recursive=True)

    def stats(self, container_id: str) -> dict[str, Any]:
        state = self.store.load(container_id)
        require(
            self._status(state),
            (Status.CREATED, Status.RUNNING, Status.PAUSED),
            "get stats of",
            container_id,
        )
        st = self._manager(state).stats(state.cgroup_name)
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
            status = self._status(state)
            if status is Status.STOPPED and not all_processes:
                raise InvalidState(f"container {container_id!r} is not running")
            if all_processes:
                manager = self._manager(state)
                if manager.exists(state.cgroup_name):
                    manager.kill(state.cgroup_name, sig)
                return
            require(status, (Status.CREATED, Status.RUNNING, Status.PAUSED), "kill", container_id)
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
            require(self._status(state), (Status.RUNNING, Status.CREATED), "pause", container_id)
            self._manager(state).freeze(state.cgroup_name)
            state.status = Status.PAUSED.value
            self.store.save(state)

    def resume(self, container_id: str) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            status = self._status(state)
            if status is not Status.PAUSED:
                raise InvalidState(
                    f"cannot resume container {container_id!r}: it is {status.value}, not paused"
                )
            self._manager(state).thaw(state.cgroup_name)
            state.status = Status.RUNNING.value
            self.store.save(state)

    def update(self, container_id: str, resources: Resources) -> None:
        with self.store.lock(container_id):
            state = self.store.load(container_id)
            require(
                self._status(state),
                (Status.CREATED, Status.RUNNING, Status.PAUSED),
                "update",
                container_id,
            )
            manager = self._manager(state)
            manager.apply(state.cgroup_name, self._resources_for_host(manager, resources))

    # -- delete ---------------------------------------------------------------------------

    def delete(self, container_id: str, force: bool = False) -> bool:
        """Remove the container. Returns False if there was nothing (only with force)."""
        try:
            lock = self.store.lock(container_id)
            lock.__enter__()
        except ContainerNotFound:
            if force:
                return False
            raise
        try:
            state = self.store.load(container_id)
            status = self._status(state)
            if status in (Status.RUNNING, Status.PAUSED, Status.CREATING) and not force:
                raise InvalidState(
                    f"cannot delete container {container_id!r} that is not stopped: {status.value} "
                    "(use --force)"
                )
            if (
                state.creator_pid
                and process_alive(state.creator_pid, 0)
                and state.creator_pid != os.getpid()
            ):
                os.kill(state.creator_pid, signal.SIGKILL)
            self._cleanup(state)
        finally:
            lock.__exit__(None, None, None)
        if state.has_poststop:
            self._run_warn_hooks("poststop", state, Status.STOPPED)
        self.store.remove(container_id)
        return True

    def _cleanup(self, state: State, quiet: bool = False) -> None:
        """Kill what is left, remove the cgroup and the state directory."""
        if state.pid and process_alive(state.pid, state.pid_start):
            try:
                os.kill(state.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if state.cgroup_name:
            try:
                manager = self._manager(state)
                if manager.exists(state.cgroup_name):
                    manager.kill(state.cgroup_name)
                    manager.wait_empty(state.cgroup_name)
                    if state.cgroup_made:
                        manager.delete(state.cgroup_name, force=True)
            except CgroupError as err:
                if not quiet:
                    raise
                self.warn(f"cleanup of cgroup {state.cgroup_name}: {err}")
        if quiet:
            self.store.remove(state.id)

    # -- exec -----------------------------------------------------------------------------

    def exec(
        self,
        container_id: str,
        process: Process,
        *,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
    ) -> int:
        state = self.store.load(container_id)
        status = self._status(state)
        if status is Status.PAUSED:
            raise InvalidState(f"cannot exec in container {container_id!r}: it is paused")
        require(status, (Status.CREATED, Status.RUNNING), "exec in", container_id)
        config = self._config(state)
        manager = self._manager(state)
        kinds = tuple(
            k
            for k in ("user", "ipc", "uts", "network", "cgroup", "time", "mount", "pid")
            if _differs(state.pid, k)
        )
        console = None
        proxy = None
        if process.terminal:
            if console_socket:
                console = _connect_console(console_socket)
            elif detach:
                raise ContainerError("exec --tty --detach needs --console-socket")
            else:
                proxy, console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if not detach:
            prctl.set_child_subreaper(True)
        ours, theirs = Channel.pair()
        ctx = InitContext(
            config=config,
            process=process,
            channel=theirs,
            manager=manager if manager.exists(state.cgroup_name) else None,
            group=state.cgroup_name,
            console=console,
            preserve_fds=preserve_fds,
            exec_into=state.pid,
            exec_namespaces=kinds,
            seccomp=config.seccomp,
        )
        setup_pid = os.fork()
        if setup_pid == 0:
            ours.close()
            if proxy is not None:
                proxy.close()
            setup_process(ctx)
        theirs.close()
        if console is not None:
            console.close()
        pid = 0
        try:
            while True:
                try:
                    msg = ours.recv()
                except SyncError:
                    raise ContainerError("the exec'd process died during setup") from None
                if msg["type"] == "pid":
                    pid = int(msg["pid"])
                elif msg["type"] == "warning":
                    self.warn(str(msg["message"]))
                elif msg["type"] == "ready":
                    break
                elif msg["type"] == "error":
                    err = ContainerError(str(msg["message"]))
                    err.exit_code = int(msg.get("exit_code", 1))  # type: ignore[attr-defined]
                    raise err
        except BaseException:
            if proxy is not None:
                proxy.close()
            raise
        finally:
            ours.close()
            os.waitpid(setup_pid, 0)
        if pid_file:
            write_pid_file(pid_file, pid)
        master = None
        if proxy is not None:
            from .console import receive_master

            master = receive_master(proxy)
            proxy.close()
        if detach:
            return 0
        return wait_foreground(pid, master)


def _differs(pid: int, kind: str) -> bool:
    from corral.kernel.namespaces import NS_PROC_NAMES

    name = NS_PROC_NAMES[kind]
    try:
        return os.readlink(f"/proc/{pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return False


def _connect_console(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as err:
        s.close()
        raise ContainerError(f"cannot connect to console socket `{path}`: {err.strerror}") from err
    return s


def _write_id_maps(pid: int, config: ContainerConfig) -> None:
    for name, maps in (("uid_map", config.uid_mappings), ("gid_map", config.gid_mappings)):
        if not maps:
            raise ConfigError("config.json: a new user namespace needs uidMappings and gidMappings")
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as err:
            raise ContainerError(f"writing /proc/{pid}/{name}: {err.strerror}") from err


def write_pid_file(path: str, pid: int) -> None:
    """Atomically, as callers poll for it."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


_FORWARDED = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCONT,
)


def wait_foreground(pid: int, master: int | None) -> int:
    """Wait for `pid` (our child or re-parented to us), forwarding signals; with a terminal
    master, copy between it and our stdio. Returns the exit code (128+N for signal N)."""

    def forward(sig: int, _frame: object) -> None:
        if sig == signal.SIGWINCH and master is not None:
            from .console import get_size, set_size

            size = get_size(0)
            if size:
                set_size(master, size)
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        if master is not None:
            from .tty import proxy_terminal

            proxy_terminal(master, pid)
        while True:
            try:
                done, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255
            except InterruptedError:
                continue
            if done == pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
