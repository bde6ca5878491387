"""Container operations: create (image -> snapshot -> OCI bundle), start (spawn the
monitor), stop, kill, remove, exec, and the truth about a container's status worked out
from its records and the kernel (a monitor or init killed with -9 cannot lie to `ps`).

Ordering rule: every step is recorded before it acts, and every undo tolerates a step
that never happened, so `remove_everything` cleans up after a crash at any point.
"""

from __future__ import annotations

import contextlib
import os
import time

from corral import fastjson
from corral.engine.model import ContainerSpec, ContainerState, Status
from corral.engine.runtimes import LibraryRuntime, Runtime, RuntimeFailed, parse_signal, runtime_for
from corral.engine.store import ContainerStore
from corral.errors import ContainerError, InvalidState

MONITOR_START_TIMEOUT = 60.0
SIGKILL = 9  # not signal.SIGKILL: the signal module (enums) costs a millisecond to import

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def now() -> str:
    return stamp(time.time())


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def image_store(data_root: str) -> Any:
    from corral.image.store import Store

    return Store(os.path.join(data_root, "image"))


def has_snapshot(data_root: str, cid: str) -> bool:
    """Whether the container has an image snapshot: looked up without loading the image
    store (hashlib, the OCI models: ~10 ms), which a container made from a directory (an
    LXC one) never needs. The path is image_store's Store.snapshots_dir/<id>."""
    return os.path.isdir(os.path.join(data_root, "image", "snapshots", cid))


# ----- create -------------------------------------------------------------------------------


def create(data_root: str, spec: ContainerSpec, image: Any) -> str:
    """Record the container, make its rootfs snapshot and its OCI bundle. On any failure
    nothing is left (no directory, name, snapshot or mount)."""
    from corral.image import snapshot

    store = ContainerStore(data_root)
    spec.image_id = image.id
    spec.created = now()
    if spec.runtime:
        Runtime(spec.runtime)  # resolve now: a bad --runtime is an error before anything exists
    from corral.engine import networking

    networking.validate(data_root, spec)
    cid = store.create(spec)
    try:
        images = image_store(data_root)
        rootfs = snapshot.prepare(images, image, cid)
        _write_bundle(data_root, cid, spec, image.config, rootfs)
    except BaseException:
        remove_everything(data_root, cid, remove_volumes=True)
        raise
    return cid


def create_system(data_root: str, spec: ContainerSpec) -> str:
    """Record a container whose front end writes its OCI config itself (write_config) and
    whose root is a directory of its own, not an image snapshot (`corral lxc`)."""
    from corral.engine import networking

    store = ContainerStore(data_root)
    spec.created = now()
    networking.validate(data_root, spec)
    return store.create(spec)


def write_config(data_root: str, cid: str, config: dict[str, Any]) -> None:
    """Replace the bundle's config.json (the container is not running)."""
    path = os.path.join(ContainerStore(data_root).bundle(cid), "config.json")
    with open(path + ".tmp", "w") as f:
        f.write(fastjson.dumps(config))
    os.replace(path + ".tmp", path)


def _write_bundle(
    data_root: str, cid: str, spec: ContainerSpec, image_config: dict[str, Any], rootfs: str
) -> None:
    from corral.engine import networking, ocispec
    from corral.engine.volumes import Volumes, oci_mounts

    store = ContainerStore(data_root)
    mounts = oci_mounts(spec.mounts, Volumes(data_root))
    store.save_spec(cid, spec)  # anonymous volumes got their names
    init = None
    if spec.init:
        init = "/usr/bin/tini-static"
        if not os.path.exists(init):
            raise ContainerError("--init needs tini (Debian: apt-get install tini)")
    shared = networking.shared_with(spec)
    shared_dir = store.dir(store.resolve(shared)) if shared is not None else None
    config = ocispec.build(
        spec, image_config, rootfs, cid, store.dir(cid), mounts, init, shared_dir
    )
    path = os.path.join(store.bundle(cid), "config.json")
    with open(path + ".tmp", "w") as f:
        f.write(fastjson.dumps(config))
    os.replace(path + ".tmp", path)


def mount_rootfs(data_root: str, cid: str) -> None:
    if not has_snapshot(data_root, cid):
        return
    from corral.image import snapshot

    images = image_store(data_root)
    rootfs = snapshot.rootfs_path(images, cid)
    if os.path.isdir(os.path.join(images.snapshots_dir, cid, "upper")) and not snapshot.is_mounted(
        rootfs
    ):
        snapshot.mount(images, cid)


def unmount_rootfs(data_root: str, cid: str) -> None:
    """The image snapshot's mount, or a root a front end mounted for the container (the
    bundle's io.corral.mounted-root annotation: an LXC snapshot copy's overlay)."""
    from corral.kernel.mount import MNT_DETACH, is_mounted, umount2

    if has_snapshot(data_root, cid):
        from corral.image import snapshot

        images = image_store(data_root)
        if os.path.isdir(os.path.join(images.snapshots_dir, cid, "upper")):
            snapshot.unmount(images, cid)
            return
    try:
        with open(os.path.join(ContainerStore(data_root).bundle(cid), "config.json"), "rb") as f:
            mounted = fastjson.loads(f.read()).get("annotations", {}).get("io.corral.mounted-root")
    except (OSError, ValueError):
        return
    if mounted and is_mounted(mounted):
        with contextlib.suppress(Exception):
            umount2(mounted, MNT_DETACH)


# ----- status ----------------------------------------------------------------------------------


def alive(pid: int, start: int) -> bool:
    from corral.kernel.identity import process_alive

    return process_alive(pid, start)


def current(store: ContainerStore, cid: str) -> ContainerState:
    """The state as recorded, corrected by what the kernel says."""
    state = store.load_state(cid)
    monitor_alive = alive(state.monitor_pid, state.monitor_start)
    if state.status in (Status.RUNNING, Status.PAUSED):
        if not alive(state.pid, state.pid_start) and not monitor_alive:
            state.status = Status.EXITED  # died while nobody watched: the code is unknown
            state.exit_code = state.exit_code or 255
            state.error = state.error or "the container's monitor was killed"
    elif state.status == Status.RESTARTING and not monitor_alive:
        state.status = Status.EXITED
    return state


# ----- start ------------------------------------------------------------------------------------


def spawn_monitor(data_root: str, cid: str, client: Any = None) -> int:
    """Start the container's monitor; wait until the container runs. Returns its pid; a
    start failure raises RuntimeFailed with docker's exit code (125, 126, 127)."""
    store = ContainerStore(data_root)
    wait_monitor_gone(store, cid)  # a previous monitor may still be unmounting the rootfs
    with store.lock(cid):
        state = current(store, cid)
        if state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            raise InvalidState(f"container {cid[:12]} is already {state.status}")
        state.stop_requested = False
        state.status = Status.CREATED if not state.started_at else state.status
        store.save_state(cid, state)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    client_fd = client.fileno() if client is not None else None
    log = os.path.join(store.dir(cid), "monitor.log")
    pid = os.fork()
    if pid == 0:  # the monitor-to-be: detach, then create and start from here (no exec yet)
        code = 1
        try:
            os.close(status_r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)  # the grandchild is re-parented: not a child of the CLI
            null = os.open("/dev/null", os.O_RDWR)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(null)
            os.close(out)
            from corral.engine import monitor

            monitor.launch(data_root, cid, client_fd, status_w)
            code = 0
        finally:
            os._exit(code)
    os.close(status_w)
    os.waitpid(pid, 0)
    with os.fdopen(status_r, "rb") as f:
        line = f.readline().decode().strip()
    if line.startswith("started"):
        return int(line.split()[1])
    if line.startswith("error"):
        _, code_text, message = [*line.split(" ", 2), ""][:3]
        raise RuntimeFailed(message, int(code_text))
    raise RuntimeFailed("the monitor exited before starting the container (see monitor.log)")


# ----- stop, kill ------------------------------------------------------------------------------


def wait_monitor_gone(store: ContainerStore, cid: str, timeout: float = 30.0) -> None:
    """A monitor records the exit before its last steps (unmounting, removing): wait until
    it has finished them, so that what comes next does not race it."""
    state = store.load_state(cid)
    if state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
        return
    wait_process_gone(state.monitor_pid, state.monitor_start, timeout)


def wait_process_gone(pid: int, start: int, timeout: float) -> bool:
    """Until the process (pid and start time) has exited: woken by a pidfd, not polled.
    True if it is gone."""
    import select

    if not alive(pid, start):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return True  # gone between the two looks
    try:
        if not alive(pid, start):  # the pid was reused before pidfd_open: not ours
            return True
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not alive(pid, start)


def _runtime(spec: ContainerSpec) -> Runtime | LibraryRuntime:
    return runtime_for(spec.runtime)


def kill(data_root: str, cid: str, sig: str | int = "KILL", *, user: bool = True) -> None:
    store = ContainerStore(data_root)
    spec = store.load_spec(cid)
    with store.lock(cid):
        state = current(store, cid)
        if state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            raise InvalidState(f"container {cid[:12]} is not running")
        if user:
            state.stop_requested = True
            store.save_state(cid, state)
    number = parse_signal(str(sig)) if not isinstance(sig, int) else sig
    if state.status == Status.RESTARTING:
        return  # the monitor sees stop_requested and does not start it again
    try:
        _runtime(spec).kill(cid, number)
    except RuntimeFailed:
        try:
            os.kill(state.pid, number)  # the runtime lost it; the pid was alive above
        except ProcessLookupError:
            pass  # it exited meanwhile (a restart policy's container between two lives)
    if state.status == Status.PAUSED and number == SIGKILL:
        with contextlib.suppress(RuntimeFailed):
            _runtime(spec).resume(cid)


def pause(data_root: str, cid: str, frozen: bool) -> None:
    """Freeze (`pause`) or thaw a container through its runtime; it must be running, or
    paused to be thawed."""
    store = ContainerStore(data_root)
    with store.lock(cid):
        state = current(store, cid)
        want = Status.RUNNING if frozen else Status.PAUSED
        if state.status != want:
            raise InvalidState(f"container {cid[:12]} is {state.status}, not {want}")
        runtime = _runtime(store.load_spec(cid))
        (runtime.pause if frozen else runtime.resume)(cid)
        state.status = Status.PAUSED if frozen else Status.RUNNING
        store.save_state(cid, state)


def wait_exit(data_root: str, cid: str, timeout: float | None = None) -> ContainerState:
    """Until the container is neither running nor restarting (by its monitor's record, or
    by the kernel when the monitor is gone), or the timeout passes."""
    store = ContainerStore(data_root)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        state = current(store, cid)
        if state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            return state
        if deadline is not None and time.monotonic() > deadline:
            return state
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def stop(data_root: str, cid: str, timeout: int | None = None) -> None:
    store = ContainerStore(data_root)
    spec = store.load_spec(cid)
    state = current(store, cid)
    if state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
        with store.lock(cid):
            state = store.load_state(cid)
            state.stop_requested = True
            store.save_state(cid, state)
        return  # docker: stopping a stopped container is not an error
    grace = (
        timeout
        if timeout is not None
        else (spec.stop_timeout if spec.stop_timeout is not None else 10)
    )
    kill(data_root, cid, spec.stop_signal or "TERM")
    state = wait_exit(data_root, cid, grace)
    if state.status in (Status.RUNNING, Status.PAUSED):
        with contextlib.suppress(InvalidState):
            kill(data_root, cid, "KILL")
        state = wait_exit(data_root, cid, 30)
    if state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
        raise ContainerError(f"container {cid[:12]} did not stop")
    wait_monitor_gone(store, cid)
    finalise_unwatched(data_root, cid)


def finalise_unwatched(data_root: str, cid: str) -> None:
    """When the monitor was killed, do its end-of-life work: delete the runtime's
    container, unmount the rootfs, record the exit."""
    store = ContainerStore(data_root)
    state = store.load_state(cid)
    if alive(state.monitor_pid, state.monitor_start):
        return
    spec = store.load_spec(cid)
    with contextlib.suppress(Exception):
        _runtime(spec).delete(cid, force=True)
    from corral.engine import networking

    networking.detach(data_root, cid)
    unmount_rootfs(data_root, cid)
    fixed = current(store, cid)
    if fixed.status != state.status:
        with store.lock(cid):
            store.save_state(cid, fixed)


# ----- remove ----------------------------------------------------------------------------------


def remove_everything(
    data_root: str, cid: str, *, remove_volumes: bool = False, from_monitor: bool = False
) -> None:
    """Processes, runtime state, mounts, snapshot, anonymous volumes, records, name. Works
    on a container in any state, including half-created ones."""
    store = ContainerStore(data_root)
    try:
        spec = store.load_spec(cid)
    except ContainerError:
        spec = None
    state = store.load_state(cid) if os.path.isdir(store.dir(cid)) else ContainerState()
    if not from_monitor and alive(state.monitor_pid, state.monitor_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.monitor_pid, SIGKILL)
    if alive(state.pid, state.pid_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, SIGKILL)
    if spec is not None and not from_monitor:  # the monitor deleted it when init exited
        with contextlib.suppress(Exception):
            _runtime(spec).delete(cid, force=True)
    from corral.engine import networking

    networking.detach(data_root, cid)
    unmount_rootfs(data_root, cid)  # a root a front end mounted (LXC snapshot copies)
    if has_snapshot(data_root, cid):
        from corral.image import snapshot

        snapshot.remove(image_store(data_root), cid)
    run_root = os.environ.get("CORRAL_ROOT", "/run/corral")
    from corral.engine.monitor import attach_path, console_path

    for path in (attach_path(run_root, cid), console_path(run_root, cid)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if remove_volumes and spec is not None:
        from corral.engine.volumes import Volumes

        volumes = Volumes(data_root)
        for m in spec.mounts:
            if m["type"] == "volume" and m.get("anonymous"):
                with contextlib.suppress(Exception):
                    volumes.remove(m["source"], [])
    store.remove(cid, spec.name if spec else None)


# ----- update ------------------------------------------------------------------------------------


def update(
    data_root: str, cid: str, resources: dict[str, Any], restart: tuple[str, int] | None
) -> None:
    """`corral update`: new limits applied live (through the runtime) and kept for the next
    start (spec and bundle); a new restart policy."""
    from corral.engine.ocispec import oci_resources

    store = ContainerStore(data_root)
    with store.lock(cid):
        spec = store.load_spec(cid)
        spec.resources.update(resources)
        if restart is not None:
            spec.restart, spec.restart_max = restart
        if resources and current(store, cid).status in (Status.RUNNING, Status.PAUSED):
            _runtime(spec).update(cid, oci_resources(resources))
        store.save_spec(cid, spec)
        path = os.path.join(store.bundle(cid), "config.json")
        with open(path, "rb") as f:
            config = fastjson.loads(f.read())
        devices = config["linux"]["resources"].get("devices", [])
        config["linux"]["resources"] = {**oci_resources(spec.resources), "devices": devices}
        with open(path + ".tmp", "w") as f:
            f.write(fastjson.dumps(config))
        os.replace(path + ".tmp", path)


# ----- exec ----------------------------------------------------------------------------------


def exec_process_file(
    data_root: str,
    cid: str,
    argv: list[str],
    *,
    env: list[str] | None = None,
    base_env: list[str] | None = None,
    user: str = "",
    workdir: str = "",
    tty: bool = False,
) -> str:
    """Write the process.json for `runtime exec` (the container's env and caps, overrides).
    `env` is merged over the container's environment, or over `base_env` instead."""
    from corral.engine import ocispec

    store = ContainerStore(data_root)
    with open(os.path.join(store.bundle(cid), "config.json"), "rb") as f:
        config = fastjson.loads(f.read())
    process = dict(config["process"])
    process["args"] = argv
    process["terminal"] = tty
    if base_env is not None:
        process["env"] = list(base_env)
    if env:
        process["env"] = ocispec.merge_env(process.get("env", []), env)
    if user:
        process["user"] = ocispec.resolve_user(config["root"]["path"], user)
        if process["user"]["uid"] != 0:
            process["capabilities"] = dict(process["capabilities"], effective=[])
    if workdir:
        process["cwd"] = workdir
    path = os.path.join(store.dir(cid), f"exec-{os.getpid()}-{time.monotonic_ns()}.json")
    with open(path, "w") as f:
        f.write(fastjson.dumps(process))
    return path


def exec_capture(data_root: str, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a command in the container and capture its output (health checks)."""
    import subprocess

    store = ContainerStore(data_root)
    spec = store.load_spec(cid)
    path = exec_process_file(data_root, cid, argv)
    try:
        result = subprocess.run(
            _runtime(spec).exec_argv(cid, path), capture_output=True, timeout=timeout, check=False
        )
        return result.returncode, (result.stdout + result.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired:
        return -1, f"health check timed out after {timeout:g}s"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
