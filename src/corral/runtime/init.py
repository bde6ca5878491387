"""The container side of create and exec: code that runs in forked children.

create:  runtime ──fork──> setup process: joins the cgroup and namespaces given by path,
                           unshares the new ones (user first, its id maps written by the
                           runtime), then forks
                 ──fork──> init (pid 1 of a new pid namespace): builds the rootfs, switches
                           root, sets identity and limits, reports "ready", then blocks on the
                           exec fifo until `start` and execs the user's program.
The setup process exits at once, so init is re-parented to the caller's subreaper (the
shim, conmon) or to the host's init, exactly as with runc. No Python interpreter stays
behind: init *becomes* the user's program.
"""

from __future__ import annotations

import os
import sys

from corral.errors import CorralError
from corral.kernel import namespaces as ns
from corral.kernel import prctl
from corral.kernel.process import setdomainname, sethostname
from corral.structs import field, record

from .config import ContainerConfig, Process
from .sync import Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, NoReturn

    from corral.cgroups import Manager

# setns order: the user namespace first (it owns the others), mount last but one, pid last.
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "mount", "pid")


@record
class InitContext:
    config: ContainerConfig
    process: Process
    channel: Channel
    manager: Manager | None
    group: str
    fifo_fd: int = -1  # create: read end of the exec fifo; init waits on it for start
    console: socket.socket | None = None
    no_pivot: bool = False
    new_keyring: bool = True  # runc's default; --no-new-keyring turns it off
    preserve_fds: int = 0
    cgroup_dirs: dict[str, str] = field(default_factory=dict)
    exec_into: int = 0  # exec: the pid of the container whose namespaces to join
    exec_namespaces: tuple[str, ...] = ()
    seccomp: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)


def _fail(ch: Channel, err: BaseException) -> NoReturn:
    message = (
        str(err) if isinstance(err, (CorralError, OSError)) else f"{type(err).__name__}: {err}"
    )
    code = getattr(err, "exit_code", 1)
    try:
        ch.send("error", message=message, exit_code=code)
    except OSError:
        pass
    os._exit(1)


def _preload(ctx: InitContext) -> None:
    """Import now what init needs later: once it has joined the container's mount
    namespace or switched root, Corral's own files (and libseccomp) are out of sight."""
    from . import process, rootfs  # noqa: F401

    if ctx.process.terminal:
        from . import console  # noqa: F401

    if ctx.config.hooks.create_container or ctx.config.hooks.start_container:
        from . import hooks  # noqa: F401
    if ctx.seccomp:
        from corral.kernel.seccomp import library

        from . import seccomp  # noqa: F401

        library()


def setup_process(ctx: InitContext) -> NoReturn:
    """The first child: cgroup, namespaces, then fork init."""
    ch = ctx.channel
    try:
        _preload(ctx)
        if ctx.exec_into and ctx.manager is not None:
            ctx.manager.add_process(ctx.group, os.getpid())
        # For create, the runtime moves init into the cgroup while init builds its rootfs:
        # the first cgroup migration waits ~15 ms for an RCU grace period, so it runs in
        # parallel rather than in line.
        if ctx.exec_into:
            _join_container(ctx.exec_into, ctx.exec_namespaces)
        else:
            _enter_namespaces(ctx)
        pid = os.fork()
        if pid == 0:
            container_init(ctx) if not ctx.exec_into else exec_init(ctx)
        ch.send("pid", pid=pid)
        os._exit(0)
    except BaseException as err:  # everything is reported, nothing returns into the runtime
        _fail(ch, err)


def _join_container(pid: int, kinds: tuple[str, ...]) -> None:
    fds = []
    for kind in _JOIN_ORDER:
        if kind in kinds:
            fds.append(
                (
                    kind,
                    os.open(f"/proc/{pid}/ns/{ns.NS_PROC_NAMES[kind]}", os.O_RDONLY | os.O_CLOEXEC),
                )
            )
    for kind, fd in fds:
        ns.setns(fd, ns.NAMESPACE_FLAGS[kind], target=f"/proc/{pid}/ns/{ns.NS_PROC_NAMES[kind]}")
        os.close(fd)


def _enter_namespaces(ctx: InitContext) -> None:
    cfg = ctx.config
    joined = [n for n in cfg.namespaces if n.path]
    joined.sort(key=lambda n: _JOIN_ORDER.index(n.type))
    for n in joined:
        assert n.path is not None
        ns.setns_path(n.path, ns.NAMESPACE_FLAGS[n.type])
    if cfg.new_namespace("user"):
        ns.unshare(ns.CLONE_NEWUSER)
        ctx.channel.send("idmap", pid=os.getpid())
        ctx.channel.expect("idmap-done")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    flags = 0
    for n in cfg.namespaces:
        # The cgroup namespace is unshared by init itself, once it is in its cgroup (the
        # namespace's root is the cgroup its creator is in).
        if n.path is None and n.type not in ("user", "cgroup"):
            flags |= ns.NAMESPACE_FLAGS[n.type]
    if flags:
        ns.unshare(flags)
    if cfg.time_offsets:
        with open("/proc/self/timens_offsets", "w") as f:
            for clock, (secs, nanos) in cfg.time_offsets.items():
                f.write(f"{clock} {secs} {nanos}\n")


def _keep_fds(ctx: InitContext, extra: list[int]) -> None:
    """Close everything but stdio, the preserved fds and ours; make the preserved inheritable."""
    keep = set(range(3 + ctx.preserve_fds)) | set(extra)
    for fd in range(3, 3 + ctx.preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    start = 0
    for fd in [*sorted(keep), 1 << 20]:
        if fd > start:
            os.closerange(start, min(fd, 65536))
        start = fd + 1


def container_init(ctx: InitContext) -> NoReturn:
    """pid 1 of the container, until it execs the user's program."""
    from .rootfs import RootfsBuilder

    ch = ctx.channel
    cfg = ctx.config
    proc = ctx.process
    warnings: list[str] = []
    try:
        fifo_fd = ctx.fifo_fd
        builder = RootfsBuilder(
            cfg, ctx.cgroup_dirs, cfg.namespace("user") is not None, warnings.append
        )
        if not cfg.new_namespace("mount"):
            raise CorralError("the container needs a new mount namespace (linux.namespaces)")
        builder.prepare()
        ch.expect("cgroup-joined")
        if cfg.new_namespace("cgroup"):
            ns.unshare(ns.CLONE_NEWCGROUP)
        if cfg.hooks.prestart or cfg.hooks.create_runtime:
            ch.send("hooks")
            ch.expect("hooks-done")
        if cfg.hooks.create_container:
            from .hooks import run_hooks

            run_hooks(
                "createContainer", cfg.hooks.create_container, ctx.state | {"pid": os.getpid()}
            )
        builder.switch_root(ctx.no_pivot)
        if proc.terminal:
            _attach_terminal(ctx, proc, builder)
        builder.finish()
        if ctx.new_keyring:
            _new_session_keyring(ctx, warnings)
        if cfg.hostname is not None:
            sethostname(cfg.hostname)
        if cfg.domainname is not None:
            setdomainname(cfg.domainname)
        exe, env = _become_the_process(ctx, proc, cfg.personality, warnings, [fifo_fd])
    except BaseException as err:
        _fail(ch, err)
    # From here on nobody listens on the sync socket: errors go to the container's stderr.
    try:
        if fifo_fd >= 0:
            if os.read(fifo_fd, 1) == b"":
                os._exit(1)
            os.close(fifo_fd)
        if cfg.hooks.start_container:
            from .hooks import run_hooks

            run_hooks(
                "startContainer",
                cfg.hooks.start_container,
                ctx.state | {"pid": os.getpid(), "status": "running"},
            )
        _default_signals()
        _load_seccomp(ctx, proc)
        os.execve(exe, list(proc.args), _env_dict(env))
    except BaseException as err:
        _die(err)


def _die(err: BaseException) -> NoReturn:
    """After "ready" nobody reads the sync pipe: report on the process's own stderr."""
    sys.stderr.write(f"corral-runtime: {err}\n")
    sys.stderr.flush()
    os._exit(127 if isinstance(err, FileNotFoundError) else 1)


def _become_the_process(
    ctx: InitContext, proc: Process, personality: str | None, warnings: list[str], keep: list[int]
) -> tuple[str, list[str]]:
    """Limits, identity and capabilities; the program to exec; then report "ready".
    Returns the executable's path and the environment."""
    from . import process as proc_setup

    _identity_and_limits(proc, personality, warnings)
    env = proc_setup.build_env(proc)
    exe = proc_setup.find_executable(proc.args[0], env)
    _seccomp_while_privileged(ctx, proc)
    proc_setup.finalize(proc)
    _keep_fds(ctx, [*keep, *ctx.channel.fds()])
    for w in warnings:
        ctx.channel.send("warning", message=w)
    ctx.channel.send("ready")
    ctx.channel.close()
    return exe, env


def _new_session_keyring(ctx: InitContext, warnings: list[str]) -> None:
    """Keys the runtime's session holds must not be visible in the container."""
    import errno

    from corral.errors import KernelError
    from corral.kernel.process import join_session_keyring

    try:
        join_session_keyring(f"_ses.{ctx.state.get('id', '')}" if ctx.state.get("id") else None)
    except KernelError as err:
        # No keyrings in this kernel, or not allowed here (a user namespace): carry on.
        if err.errno not in (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EDQUOT):
            raise
        warnings.append(f"no new session keyring for the container: {err}")


def _identity_and_limits(proc: Process, personality: str | None, warnings: list[str]) -> None:
    from . import process as proc_setup

    proc_setup.apply_rlimits(proc, warnings.append)
    proc_setup.apply_oom_score_adj(proc.oom_score_adj)
    proc_setup.apply_personality(personality)


def _attach_terminal(ctx: InitContext, proc: Process, builder: Any) -> None:
    from .console import become_terminal_session, open_pty, send_master

    if ctx.console is None:
        raise CorralError("process.terminal is set but no --console-socket was given")
    master, slave, name = open_pty(proc.console_size)
    if builder is not None:
        builder.bind_console(name)
    send_master(ctx.console, master, name)
    os.close(master)
    ctx.console.close()
    become_terminal_session(slave)


def _seccomp_while_privileged(ctx: InitContext, proc: Process) -> None:
    """Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it now, before
    capabilities are dropped (runc does the same). The filter then also covers the few
    calls left before exec (reading the fifo, closing fds, execve)."""
    if ctx.seccomp and not proc.no_new_privileges:
        _install_seccomp(ctx.seccomp)


def _load_seccomp(ctx: InitContext, proc: Process) -> None:
    """With no_new_privs, the filter goes in as late as possible: right before execve."""
    if proc.no_new_privileges:
        prctl.set_no_new_privs()
        if ctx.seccomp:
            _install_seccomp(ctx.seccomp)


def _install_seccomp(spec: dict[str, Any]) -> None:
    from .seccomp import build

    f = build(spec)
    try:
        f.load()
    finally:
        f.release()


def _env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def exec_init(ctx: InitContext) -> NoReturn:
    """A process started by `exec` inside a running container."""
    ch = ctx.channel
    proc = ctx.process
    warnings: list[str] = []
    try:
        if proc.terminal:
            _attach_terminal(ctx, proc, None)
        exe, env = _become_the_process(ctx, proc, None, warnings, [])
    except BaseException as err:
        _fail(ch, err)
    try:
        _default_signals()
        _load_seccomp(ctx, proc)
        os.execve(exe, list(proc.args), _env_dict(env))
    except BaseException as err:
        _die(err)


def _default_signals() -> None:
    """The process starts with every signal at its default and none blocked, whatever its
    caller ignored: an ignored SIGTERM or SIGPIPE is inherited across execve, and a shell
    may not even trap a signal that was ignored when it started."""
    import _signal  # type: ignore[import-not-found]  # built in: the rootfs may have no stdlib

    for sig in _signal.valid_signals():
        if sig in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # signals the C library reserves for itself
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
