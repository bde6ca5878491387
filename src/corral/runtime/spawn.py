"""Making processes: create (and run) a container, exec a process in one.

The runtime forks a setup process that enters the namespaces and forks the container's
init (see init.py); the two sides talk over a Channel. Every kernel object is recorded in
the state before it is made.
"""

from __future__ import annotations

import os

from corral import fastjson
from corral.cgroups.layout import Mode
from corral.cgroups.manager import open_manager
from corral.errors import ConfigError, ContainerError
from corral.kernel import prctl
from corral.kernel.process import process_start_time
from corral.structs import replace

from .config import ContainerConfig, Process, convert, load_bundle
from .init import InitContext, setup_process
from .state import State, Status, current_status, now_rfc3339, require
from .sync import Channel, SyncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from corral.cgroups import Manager, Resources

    from .container import Runtime

SPEC_COPY = "config.json"
SIGKILL = 9


def cgroup_location(
    cgroups_path: str, container_id: str, systemd: bool, warn: Callable[[str], None]
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


def resources_for_host(manager: Manager, r: Resources, warn: Callable[[str], None]) -> Resources:
    if manager.mode == Mode.V2 and r.net_cls_classid is not None:
        warn("linux.resources.network.classID is ignored on cgroup v2")
        r = replace(r, net_cls_classid=None)
    return r


def create(
    rt: Runtime,
    container_id: str,
    bundle: str,
    *,
    pid_file: str | None = None,
    console_socket: str | None = None,
    no_pivot: bool = False,
    no_new_keyring: bool = False,
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
    parent, name = cgroup_location(config.cgroups_path, container_id, rt.systemd_cgroup, rt.warn)
    manager = open_manager(parent=parent, allow_root=True)
    store = rt.store
    store.create_dir(container_id)
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
        cgroup_dirs=manager.planned_directories(name),
        has_poststart=bool(config.hooks.poststart),
        has_poststop=bool(config.hooks.poststop),
    )
    init_pid = 0
    try:
        with open(os.path.join(store.dir(container_id), SPEC_COPY), "wb") as f:
            f.write(fastjson.dumps(spec).encode())
        existed = manager.exists(name)
        if existed:
            state.cgroup_made = False  # joined a group someone else made: never delete it
        store.save(state)
        manager.create(name, resources_for_host(manager, config.resources, rt.warn))
        fifo = store.fifo_path(container_id)
        os.mkfifo(fifo, 0o600)
        console = console_pair
        if console is None and console_socket:
            console = connect_console(console_socket)
        init_pid = _spawn(
            rt,
            state,
            config,
            manager,
            name,
            fifo,
            console,
            no_pivot,
            not no_new_keyring,
            preserve_fds,
        )
        state.status = Status.CREATED
        state.creator_pid = 0
        store.save(state)
        if pid_file:
            write_pid_file(pid_file, init_pid)
        return state
    except BaseException:
        if init_pid:
            try:
                os.kill(init_pid, SIGKILL)
            except ProcessLookupError:
                pass
        rt.cleanup(state, quiet=True)
        raise


def _spawn(
    rt: Runtime,
    state: State,
    config: ContainerConfig,
    manager: Manager,
    group: str,
    fifo: str,
    console: socket.socket | None,
    no_pivot: bool,
    new_keyring: bool,
    preserve_fds: int,
) -> int:
    assert config.process is not None
    ours, theirs = Channel.pair()
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
        new_keyring=new_keyring,
        preserve_fds=preserve_fds,
        cgroup_dirs=state.cgroup_dirs,
        seccomp=config.seccomp,
        state=rt.hook_state(state, Status.CREATING),
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
                _reply(ours, "idmap-done")
            elif kind == "pid":
                init_pid = int(msg["pid"])
                state.pid = init_pid
                state.pid_start = process_start_time(init_pid)
                rt.store.save(state)  # recorded before anything else can go wrong
                manager.add_process(group, init_pid)
                _reply(ours, "cgroup-joined")
            elif kind == "hooks":
                from .hooks import run_hooks

                hook_state = rt.hook_state(state, Status.CREATING)
                try:
                    run_hooks("prestart", config.hooks.prestart, hook_state)
                    run_hooks("createRuntime", config.hooks.create_runtime, hook_state)
                except ContainerError as err:
                    ours.send("error", message=str(err))
                    raise
                ours.send("hooks-done")
            elif kind == "warning":
                rt.warn(str(msg["message"]))
            elif kind == "ready":
                break
            elif kind == "error":
                raise ContainerError(str(msg["message"]))
    finally:
        ours.close()
        os.waitpid(setup_pid, 0)
    return init_pid


def _reply(channel: Channel, kind: str) -> None:
    """Answer the container's side; if it has gone, raise the error it sent before going
    (not the EPIPE of our write)."""
    try:
        channel.send(kind)
    except BrokenPipeError:
        while True:
            try:
                msg = channel.recv()
            except SyncError:
                raise ContainerError("the container's init process died during setup") from None
            if msg["type"] == "error":
                raise ContainerError(str(msg["message"])) from None


def run(
    rt: Runtime,
    container_id: str,
    bundle: str,
    *,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
    no_pivot: bool = False,
    no_new_keyring: bool = False,
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
        from .console import proxy_pair

        proxy, console_pair = proxy_pair()
    try:
        state = create(
            rt,
            container_id,
            bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
            console_pair=console_pair,
        )
    except BaseException:
        if proxy is not None:
            proxy.close()
        raise
    master = None
    if proxy is not None:
        from .console import take_master

        master = take_master(proxy)
    try:
        rt.start(container_id)
    except BaseException:
        rt.delete(container_id, force=True)
        raise
    if detach:
        return 0
    code = wait_foreground(state.pid, master)
    if not keep:
        rt.delete(container_id, force=True)
    return code


def exec_process(
    rt: Runtime,
    container_id: str,
    process: Process,
    *,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
    preserve_fds: int = 0,
) -> int:
    state = rt.store.load(container_id)
    status = current_status(state)
    if status == Status.PAUSED:
        raise ContainerError(f"cannot exec in container {container_id!r}: it is paused")
    require(status, (Status.CREATED, Status.RUNNING), "exec in", container_id)
    config = rt.config(state)
    manager = rt.manager(state)
    kinds = tuple(
        k
        for k in ("user", "ipc", "uts", "network", "cgroup", "time", "mount", "pid")
        if _differs(state.pid, k)
    )
    console = None
    proxy = None
    if process.terminal:
        if console_socket:
            console = connect_console(console_socket)
        elif detach:
            raise ContainerError("exec --tty --detach needs --console-socket")
        else:
            from .console import proxy_pair

            proxy, console = proxy_pair()
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
    ready = False
    try:
        # The setup process sends "pid" and the new process "ready", on one pipe, in
        # either order: the new process may get there first.
        while not (pid and ready):
            try:
                msg = ours.recv()
            except SyncError:
                raise ContainerError("the exec'd process died during setup") from None
            if msg["type"] == "pid":
                pid = int(msg["pid"])
            elif msg["type"] == "warning":
                rt.warn(str(msg["message"]))
            elif msg["type"] == "ready":
                ready = True
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
        from .console import take_master

        master = take_master(proxy)
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


def connect_console(path: str) -> socket.socket:
    import socket

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


def wait_foreground(pid: int, master: int | None) -> int:
    """Wait for `pid` (our child or re-parented to us), forwarding signals; with a terminal
    master, copy between it and our stdio. Returns the exit code (128+N for signal N)."""
    import signal

    forwarded = (
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
        signal.SIGCONT,
    )

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

    previous = {s: signal.signal(s, forward) for s in forwarded}
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
