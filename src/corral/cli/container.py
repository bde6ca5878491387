"""Container verbs with docker's names, flags and exit codes: run, create, start, stop,
kill, restart, rm, ps, exec, logs, attach, wait, inspect, pause, unpause, top, rename,
update, cp, stats, port. Each verb is a few lines over corral.engine.

Exit codes as docker's: the container's own; 125 when Corral fails; 126 a command that
cannot be executed; 127 a command not found.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

from corral.errors import ConfigError, ContainerError, CorralError

from .render import emit_json, for_each, table

ENGINE_FAILED = 125


def data_root(args: argparse.Namespace) -> str:
    from corral.paths import data_root as default

    root: str = getattr(args, "data_root", None) or default()
    return root


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="create and start a container", add_help=False)
    _create_flags(run)
    run.add_argument(
        "-d", "--detach", action="store_true", help="run in the background, print its id"
    )
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("--sig-proxy", default="true", choices=("true", "false"))
    run.set_defaults(func=cmd_run)
    create = sub.add_parser(
        "create", help="create a container (start it with `corral start`)", add_help=False
    )
    _create_flags(create)
    create.add_argument("--rm", action="store_true", help="remove the container when it exits")
    create.set_defaults(func=cmd_create)

    p = sub.add_parser("start", help="start stopped or created containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument(
        "-a", "--attach", action="store_true", help="attach stdout/stderr, exit with its code"
    )
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("stop", help="stop containers: stop signal, then SIGKILL after the timeout")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument(
        "-t", "--time", "--timeout", type=int, dest="time", help="seconds before SIGKILL (10)"
    )
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("restart", help="stop then start containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="time")
    p.set_defaults(func=cmd_restart)
    p = sub.add_parser("kill", help="send a signal (default SIGKILL) to containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL")
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    p.add_argument("-v", "--volumes", action="store_true", help="also its anonymous volumes")
    p.set_defaults(func=cmd_rm)
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="also stopped ones")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="name=, id=, status=, label=, ancestor=, exited=",
    )
    p.add_argument("--format", help="json, or a template like '{{.Names}} {{.Status}}'")
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.set_defaults(func=cmd_ps)
    p = sub.add_parser("exec", help="run a command in a running container")
    p.set_defaults(error_code=ENGINE_FAILED)
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("attach", help="attach to a running container's stdio")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true")
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("wait", help="wait for containers to stop; print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_wait)
    p = sub.add_parser("inspect", help="details of containers (or images) as JSON")
    p.add_argument("objects", nargs="+", metavar="NAME")
    p.add_argument("-f", "--format", help="a template like '{{.State.Status}}'")
    p.set_defaults(func=cmd_inspect)
    for verb, help_ in (("pause", "freeze all processes"), ("unpause", "thaw all processes")):
        p = sub.add_parser(verb, help=help_)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=cmd_pause if verb == "pause" else cmd_unpause)
    p = sub.add_parser("top", help="the processes of a container")
    p.add_argument("container")
    p.set_defaults(func=cmd_top)
    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("name")
    p.set_defaults(func=cmd_rename)
    p = sub.add_parser("update", help="change a running container's limits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    _resource_flags(p)
    p.add_argument("--restart")
    p.set_defaults(func=cmd_update)
    p = sub.add_parser("cp", help="copy files between a container and the host")
    p.add_argument("src", metavar="SRC", help="CONTAINER:PATH or a host path")
    p.add_argument("dest", metavar="DEST", help="CONTAINER:PATH or a host path")
    p.set_defaults(func=cmd_cp)
    p = sub.add_parser("stats", help="live resource usage of running containers")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--no-stream", action="store_true", help="one sample, then exit")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("port", help="a container's published ports")
    p.add_argument("container")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)


def _resource_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory", help="memory limit (e.g. 64m)")
    p.add_argument("--memory-swap", help="memory + swap limit, -1 for unlimited swap")
    p.add_argument("--memory-reservation")
    p.add_argument("--cpus", help="number of CPUs (e.g. 0.5)")
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("--cpuset-mems")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--blkio-weight", type=int)


def _create_flags(p: argparse.ArgumentParser) -> None:
    # -h is docker's --hostname here, so help is --help only
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.set_defaults(error_code=ENGINE_FAILED)
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname", default="")
    p.add_argument("--domainname", default="")
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--read-only", action="store_true")
    _resource_flags(p)
    p.add_argument("--device", action="append", default=[])
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("--ulimit", action="append", default=[])
    p.add_argument(
        "--init", action="store_true", help="run an init (tini) as pid 1 that reaps zombies"
    )
    p.add_argument("--restart", default="no", help="no | on-failure[:N] | always | unless-stopped")
    p.add_argument("--health-cmd")
    p.add_argument("--health-interval", default="30s")
    p.add_argument("--health-timeout", default="30s")
    p.add_argument("--health-retries", type=int, default=3)
    p.add_argument("--health-start-period", default="0s")
    p.add_argument("--no-healthcheck", action="store_true")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--stop-signal", default="")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument(
        "--network",
        "--net",
        default="bridge",
        help="bridge (default), a network's name, none, host, or container:NAME",
    )
    p.add_argument(
        "--network-alias", action="append", default=[], help="another name peers resolve it by"
    )
    p.add_argument("--ip", default="", help="an IPv4 address on a user network")
    p.add_argument(
        "-p", "--publish", action="append", default=[], help="[ip:][hostPort:]containerPort[/proto]"
    )
    p.add_argument(
        "-P", "--publish-all", action="store_true", help="exposed ports, free host ports"
    )
    p.add_argument("--expose", action="append", default=[], help="a port to expose (for -P)")
    p.add_argument("--dns", action="append", default=[], help="a name server")
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[], help="NAME:IP in /etc/hosts")
    p.add_argument(
        "--runtime", default="", help="a runc-compatible runtime (default corral-runtime)"
    )
    p.add_argument("--pull", default="missing", choices=("missing", "always", "never"))
    p.add_argument("-q", "--quiet", action="store_true", help="no pull progress")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise ConfigError(f"invalid duration {text!r} (e.g. 30s, 1m, 500ms)")


def _resources(args: argparse.Namespace) -> dict[str, Any]:
    from corral.cgroups.units import parse_bytes, parse_cpu_list, parse_cpus

    r: dict[str, Any] = {}
    if args.memory:
        r["memory"] = parse_bytes(args.memory, "--memory")
    if args.memory_swap:
        r["memory_swap"] = (
            -1 if args.memory_swap == "-1" else parse_bytes(args.memory_swap, "--memory-swap")
        )
        if r["memory_swap"] != -1 and "memory" in r and r["memory_swap"] < r["memory"]:
            raise ConfigError("--memory-swap must be at least --memory (it is memory plus swap)")
    if args.memory_reservation:
        r["memory_reservation"] = parse_bytes(args.memory_reservation, "--memory-reservation")
    if args.cpus:
        r["cpus"] = parse_cpus(args.cpus)
    if args.cpu_shares:
        r["cpu_shares"] = args.cpu_shares
    if args.cpuset_cpus:
        r["cpuset_cpus"] = parse_cpu_list(args.cpuset_cpus, "--cpuset-cpus")
    if args.cpuset_mems:
        r["cpuset_mems"] = parse_cpu_list(args.cpuset_mems, "--cpuset-mems")
    if args.pids_limit:
        r["pids_limit"] = args.pids_limit
    if args.blkio_weight:
        r["blkio_weight"] = args.blkio_weight
    return r


def _env(args: argparse.Namespace) -> list[str]:
    out = []
    for path in args.env_file:
        try:
            with open(path) as f:
                lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as err:
            raise ConfigError(f"--env-file {path}: {err.strerror}") from None
        out.extend(lines)
    out.extend(args.env)
    resolved = []
    for item in out:
        if "=" not in item:
            if item in os.environ:
                resolved.append(f"{item}={os.environ[item]}")
            continue  # docker drops a bare name that is not set
        resolved.append(item)
    return resolved


def _restart_policy(text: str) -> tuple[str, int]:
    """--restart no | on-failure[:N] | always | unless-stopped -> (policy, max retries)."""
    policy, _, count = text.partition(":")
    if policy not in ("no", "on-failure", "always", "unless-stopped"):
        raise ConfigError(
            f"invalid --restart {text!r}: no, on-failure[:N], always or unless-stopped"
        )
    if count and (policy != "on-failure" or not count.isdigit()):
        raise ConfigError(f"invalid --restart {text!r}: a retry count needs on-failure:N")
    return policy, int(count or 0)


def build_spec(args: argparse.Namespace) -> Any:
    from corral.engine import networking
    from corral.engine.model import ContainerSpec
    from corral.engine.volumes import parse_mount, parse_tmpfs, parse_volume

    published = []
    if args.publish or args.expose:  # ports imports ipaddress: only when there are some
        from corral.network import ports

        published = [request for spec in args.publish for request in ports.parse(spec)]
        for entry in args.expose:
            ports.parse_exposed(entry)
    for entry in args.add_host:
        networking.parse_extra_host(entry)
    restart, restart_max = _restart_policy(args.restart)
    if restart != "no" and getattr(args, "rm", False):
        raise ConfigError("--restart and --rm cannot be used together")
    seccomp, nnp = "", False
    for opt in args.security_opt:
        key, _, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges":
            nnp = value in ("", "true")
        elif key in ("apparmor", "label") and value in ("unconfined", "disable"):
            continue
        else:
            raise ConfigError(
                f"unsupported --security-opt {opt!r} "
                "(seccomp=PROFILE|unconfined, no-new-privileges)"
            )
    ulimits = []
    for u in args.ulimit:
        name, _, values = u.partition("=")
        soft, _, hard = values.partition(":")
        if not name or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
            raise ConfigError(f"invalid --ulimit {u!r}: NAME=SOFT[:HARD]")
        ulimits.append({"name": name, "soft": int(soft), "hard": int(hard or soft)})
    devices = []
    for d in args.device:
        host, _, rest = d.partition(":")
        container, _, perms = rest.partition(":")
        if rest and all(c in "rwm" for c in rest):
            container, perms = "", rest
        devices.append({"host": host, "container": container or host, "perms": perms or "rwm"})
    log_opts = {}
    for opt in args.log_opt:
        key, sep, value = opt.partition("=")
        if not sep:
            raise ConfigError(f"invalid --log-opt {opt!r}: KEY=VALUE")
        log_opts[key] = value
    from corral.engine.logs import log_options

    log_options(log_opts)
    health = None
    if args.health_cmd and not args.no_healthcheck:
        health = {
            "test": ["CMD-SHELL", args.health_cmd],
            "interval": _duration(args.health_interval),
            "timeout": _duration(args.health_timeout),
            "retries": args.health_retries,
            "start_period": _duration(args.health_start_period),
        }
    mounts = [parse_volume(v) for v in args.volume] + [parse_mount(m) for m in args.mount]
    mounts += [parse_tmpfs(t) for t in args.tmpfs]
    labels = dict(item.partition("=")[::2] for item in args.label)
    return ContainerSpec(
        image=args.image,
        name=args.name or "",
        cmd=list(args.command),
        entrypoint=None
        if args.entrypoint is None
        else ([args.entrypoint] if args.entrypoint else []),
        env=_env(args),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        domainname=args.domainname,
        labels=labels,
        tty=args.tty,
        stdin_open=args.interactive,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        healthcheck=health,
        mounts=mounts,
        read_only=args.read_only,
        resources=_resources(args),
        devices=devices,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        privileged=args.privileged,
        seccomp=seccomp,
        no_new_privileges=nnp,
        ulimits=ulimits,
        init=args.init,
        restart=restart,
        restart_max=restart_max,
        log_opts=log_opts,
        network=args.network,
        networks=networking.attachments_for(args.network, args.network_alias, args.ip),
        ports=published,
        publish_all=args.publish_all,
        expose=args.expose,
        dns=args.dns,
        dns_search=args.dns_search,
        dns_options=args.dns_option,
        extra_hosts=args.add_host,
        auto_remove=bool(getattr(args, "rm", False)),
        runtime=args.runtime,
    )


def _create(args: argparse.Namespace) -> str:
    from corral.engine import images, lifecycle

    spec = build_spec(args)
    if args.pull == "always":
        from corral.image.progress import for_stream
        from corral.image.pull import pull
        from corral.image.store import Store

        image = pull(
            Store(os.path.join(data_root(args), "image")),
            args.image,
            for_stream(sys.stderr, args.quiet),
        )
    else:
        image = images.resolve(
            data_root(args), args.image, pull_missing=args.pull == "missing", quiet=args.quiet
        )
    return lifecycle.create(data_root(args), spec, image)


def cmd_create(args: argparse.Namespace) -> int:
    print(_create(args))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import socket

    from corral.engine import attach, lifecycle
    from corral.engine.runtimes import RuntimeFailed

    root = data_root(args)
    cid = _create(args)
    client = ours = None
    if not args.detach:
        ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lifecycle.spawn_monitor(root, cid, client)
    except RuntimeFailed as err:
        if args.rm:  # the monitor removes it as it ends; make sure, once it has ended
            from corral.engine.store import ContainerStore

            with contextlib.suppress(CorralError):
                lifecycle.wait_monitor_gone(ContainerStore(root), cid)
            lifecycle.remove_everything(root, cid, remove_volumes=True)
        print(f"corral: error: {err}", file=sys.stderr)
        return err.code
    finally:
        if client is not None:
            client.close()
    if args.detach:
        print(cid)
        return 0
    assert ours is not None
    proxied = _proxy_signals(root, cid) if (args.sig_proxy == "true" and not args.tty) else None
    try:
        code = attach.relay(ours, stdin=args.interactive, tty=args.tty, send_hello=False)
    finally:
        if proxied:
            for sig, old in proxied.items():
                signal.signal(sig, old)
        ours.close()
    return 0 if code == attach.DETACHED else code


def _proxy_signals(root: str, cid: str) -> dict[int, Any]:
    """Forward signals sent to a foreground `corral run` to the container (docker's sig-proxy)."""
    from corral.engine import lifecycle

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(CorralError):
            lifecycle.kill(root, cid, sig, user=False)

    saved: dict[int, Any] = {}
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        saved[sig] = signal.signal(sig, forward)
    return saved


def _ids(args: argparse.Namespace, refs: list[str]) -> list[tuple[str, str]]:
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))
    return [(ref, store.resolve(ref)) for ref in refs]


def _each(args: argparse.Namespace, refs: list[str], action: Any, echo: bool = True) -> int:
    """Act on each container named; print the name given as docker does (unless echo=False)."""
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))

    def one(ref: str) -> list[str]:
        action(store.resolve(ref))
        return [ref] if echo else []

    return for_each(refs, one, label=True)


def cmd_start(args: argparse.Namespace) -> int:
    import socket

    from corral.engine import attach, lifecycle
    from corral.engine.runtimes import RuntimeFailed
    from corral.engine.store import ContainerStore

    root = data_root(args)
    if not (args.attach or args.interactive):

        def start(cid: str) -> None:
            try:
                lifecycle.spawn_monitor(root, cid)
            except RuntimeFailed as err:
                raise CorralError(str(err)) from None

        return _each(args, args.containers, start)
    if len(args.containers) > 1:
        raise ConfigError("start -a/-i takes one container")
    cid = ContainerStore(root).resolve(args.containers[0])
    spec = ContainerStore(root).load_spec(cid)
    ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lifecycle.spawn_monitor(root, cid, client)
    except RuntimeFailed as err:
        print(f"corral: error: {err}", file=sys.stderr)
        return err.code
    finally:
        client.close()
    code = attach.relay(
        ours, stdin=args.interactive and spec.stdin_open, tty=spec.tty, send_hello=False
    )
    return 0 if code == attach.DETACHED else code


def cmd_stop(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle

    return _each(args, args.containers, lambda cid: lifecycle.stop(data_root(args), cid, args.time))


def cmd_restart(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle

    def restart(cid: str) -> None:
        lifecycle.stop(data_root(args), cid, args.time)
        lifecycle.spawn_monitor(data_root(args), cid)

    return _each(args, args.containers, restart)


def cmd_kill(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle

    return _each(
        args, args.containers, lambda cid: lifecycle.kill(data_root(args), cid, args.signal)
    )


def cmd_rm(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle
    from corral.engine.model import Status
    from corral.engine.store import ContainerStore

    root = data_root(args)
    store = ContainerStore(root)

    def remove(cid: str) -> None:
        spec = store.load_spec(cid)
        if spec.kind == "lxc":  # its config and rootfs live in the LXC directory
            raise CorralError(f"{spec.name} is an LXC container: corral lxc destroy -n {spec.name}")
        state = lifecycle.current(store, cid)
        if state.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING) and not args.force:
            raise CorralError(
                f"cannot remove container {cid[:12]}: it is {state.status}; stop it first or use -f"
            )
        lifecycle.remove_everything(root, cid, remove_volumes=args.volumes)

    return _each(args, args.containers, remove)


def _status_text(state: Any) -> str:
    from corral.cli.image import ago

    if state.status == "running":
        since = ago(state.started_at).replace(" ago", "")
        health = f" ({state.health})" if state.health else ""
        return f"Up {since}{health}"
    if state.status == "paused":
        return f"Up {ago(state.started_at).replace(' ago', '')} (Paused)"
    if state.status == "restarting":
        return f"Restarting ({state.exit_code}) {ago(state.finished_at)}"
    if state.status == "exited":
        return f"Exited ({state.exit_code}) {ago(state.finished_at)}"
    return "Created"


def _rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from corral.engine import lifecycle
    from corral.engine.store import ContainerStore
    from corral.network.state import NetworkState

    root = data_root(args)
    store = ContainerStore(root)
    published: dict[str, list[str]] = {}
    for b in NetworkState(root).live().ports:  # docker's "0.0.0.0:8080->80/tcp"
        text = f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.proto}"
        published.setdefault(b.container, []).append(text)
    rows = []
    for cid in store.ids():
        try:
            spec = store.load_spec(cid)
            state = lifecycle.current(store, cid)
        except CorralError:
            continue
        command = " ".join(_process_args(store, cid)) or " ".join(spec.cmd)
        rows.append(
            {
                "ID": cid,
                "Image": spec.image,
                "Command": command,
                "CreatedAt": spec.created,
                "Status": _status_text(state),
                "State": state.status,
                "Names": spec.name,
                "Labels": spec.labels,
                "ExitCode": state.exit_code,
                "Ports": ", ".join(published.get(cid, [])),
            }
        )
    rows.sort(key=lambda r: str(r["CreatedAt"]), reverse=True)
    return rows


def _process_args(store: Any, cid: str) -> list[str]:
    try:
        with open(os.path.join(store.bundle(cid), "config.json")) as f:
            args: list[str] = json.load(f)["process"]["args"]
            return args
    except (OSError, ValueError, KeyError):
        return []


def _matches(row: dict[str, Any], filters: list[str]) -> bool:
    for f in filters:
        key, _, value = f.partition("=")
        if key == "name" and value not in row["Names"]:
            return False
        if key == "id" and not row["ID"].startswith(value):
            return False
        if key == "status" and row["State"] != value:
            return False
        if key == "exited" and (row["State"] != "exited" or str(row["ExitCode"]) != value):
            return False
        if key == "ancestor" and row["Image"] != value:
            return False
        if key == "label":
            k, sep, v = value.partition("=")
            if k not in row["Labels"] or (sep and row["Labels"][k] != v):
                return False
        if key not in ("name", "id", "status", "exited", "ancestor", "label"):
            raise ConfigError(f"invalid filter {key!r} (name, id, status, exited, ancestor, label)")
    return True


def _template(fmt: str, row: dict[str, Any]) -> str:
    import re

    def value(m: re.Match[str]) -> str:
        path = m.group(1).strip()
        if path.startswith("json "):
            return json.dumps(_lookup(row, path[5:].strip()))
        return str(_lookup(row, path))

    return re.sub(r"\{\{\s*([^}]+?)\s*\}\}", value, fmt).replace("\\t", "\t").replace("\\n", "\n")


def _lookup(obj: Any, path: str) -> Any:
    if path in (".", ""):
        return obj
    for part in path.lstrip(".").split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise ConfigError(f"template: no field {path!r}")
    return obj


def cmd_ps(args: argparse.Namespace) -> int:
    rows = [
        r for r in _rows(args) if (args.all or r["State"] in ("running", "paused", "restarting"))
    ]
    if args.latest or args.last >= 0:
        rows = _rows(args)[: 1 if args.latest else args.last]
    rows = [r for r in rows if _matches(r, args.filter)]
    if args.quiet:
        for r in rows:
            print(r["ID"] if args.no_trunc else r["ID"][:12])
        return 0
    if args.format == "json":
        for r in rows:
            print(json.dumps(r))
        return 0
    if args.format:
        for r in rows:
            print(_template(args.format, r))
        return 0
    out = []
    for r in rows:
        command = (
            r["Command"] if args.no_trunc or len(r["Command"]) <= 20 else r["Command"][:19] + "…"
        )
        from corral.cli.image import ago

        out.append(
            [
                r["ID"] if args.no_trunc else r["ID"][:12],
                r["Image"],
                f'"{command}"',
                ago(r["CreatedAt"]),
                r["Status"],
                r["Ports"],
                r["Names"],
            ]
        )
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], out))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    import subprocess

    from corral.engine import lifecycle
    from corral.engine.model import Status
    from corral.engine.runtimes import exit_code_for, runtime_for
    from corral.engine.store import ContainerStore

    if not args.command:
        raise ConfigError("exec needs a command")
    root = data_root(args)
    store = ContainerStore(root)
    cid = store.resolve(args.container)
    state = lifecycle.current(store, cid)
    if state.status != Status.RUNNING:
        what = "paused" if state.status == Status.PAUSED else "not running"
        print(f"corral: error: container {args.container} is {what}", file=sys.stderr)
        return ENGINE_FAILED
    spec = store.load_spec(cid)
    path = lifecycle.exec_process_file(
        root,
        cid,
        list(args.command),
        env=_env_items(args.env),
        user=args.user,
        workdir=args.workdir,
        tty=args.tty,
    )
    try:
        argv = runtime_for(spec.runtime).exec_argv(cid, path, tty=args.tty, detach=args.detach)
        stdin = None if (args.interactive or args.tty) else subprocess.DEVNULL
        with (
            open(os.path.join(store.dir(cid), "exec.log"), "ab")
            if args.detach
            else contextlib.nullcontext()
        ) as log:
            result = subprocess.run(
                argv,
                stdin=stdin,
                stdout=log,
                stderr=subprocess.PIPE if not args.tty else None,
                check=False,
            )
        err = (result.stderr or b"").decode(errors="replace") if not args.tty else ""
        if result.returncode != 0 and lifecycle.current(store, cid).status != Status.RUNNING:
            print(f"corral: error: container {args.container} is not running", file=sys.stderr)
            return ENGINE_FAILED  # it died while we joined it
        markers = ("exec failed", "starting container process", "executable")
        if result.returncode != 0 and any(m in err for m in markers):
            print(err.rstrip(), file=sys.stderr)
            return exit_code_for(err)
        if err:
            sys.stderr.write(err)
        return result.returncode
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _env_items(items: list[str]) -> list[str]:
    return [
        i if "=" in i else f"{i}={os.environ.get(i, '')}"
        for i in items
        if "=" in i or i in os.environ
    ]


def cmd_logs(args: argparse.Namespace) -> int:
    from collections import deque

    from corral.engine import lifecycle, logs
    from corral.engine.model import Status
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))
    cid = store.resolve(args.container)
    directory = store.dir(cid)
    since = logs.parse_since(args.since) if args.since else None
    records: Any = logs.read(directory, since)
    if args.tail != "all":
        if not args.tail.isdigit():
            raise ConfigError(f"invalid --tail {args.tail!r}: a number or 'all'")
        records = deque(records, maxlen=int(args.tail))
    for record in records:
        _emit(record, args.timestamps)
    if not args.follow:
        return 0
    seen = sum(1 for _ in logs.read(directory, None))
    while True:
        fresh = list(logs.read(directory, None))
        for record in fresh[seen:]:
            _emit(record, args.timestamps)
        seen = len(fresh)
        state = lifecycle.current(store, cid)
        if state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
            for record in list(logs.read(directory, None))[seen:]:
                _emit(record, args.timestamps)
            return 0
        time.sleep(0.1)


def _emit(record: dict[str, str], timestamps: bool) -> None:
    text = record.get("log", "")
    if timestamps:
        text = f"{record.get('time', '')} {text}"
    stream = sys.stderr if record.get("stream") == "stderr" else sys.stdout
    stream.write(text)
    stream.flush()


def cmd_attach(args: argparse.Namespace) -> int:
    from corral.engine import attach
    from corral.engine.monitor import attach_path
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))
    cid = store.resolve(args.container)
    spec = store.load_spec(cid)
    path = attach_path(os.environ.get("CORRAL_ROOT", "/run/corral"), cid)
    try:
        sock = attach.connect(path)
    except OSError:
        raise CorralError(f"container {args.container} is not running") from None
    with sock:
        code = attach.relay(sock, stdin=spec.stdin_open and not args.no_stdin, tty=spec.tty)
    return 0 if code == attach.DETACHED else code


def cmd_wait(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle

    def wait(cid: str) -> None:
        print(lifecycle.wait_exit(data_root(args), cid).exit_code)

    return _each(args, args.containers, wait, echo=False)


def inspect_container(root: str, cid: str) -> dict[str, Any]:
    from corral.engine import lifecycle, networking
    from corral.engine.store import ContainerStore
    from corral.structs import asdict

    store = ContainerStore(root)
    spec = store.load_spec(cid)
    state = lifecycle.current(store, cid)
    bundle = os.path.join(store.bundle(cid), "config.json")
    try:
        with open(bundle) as f:
            oci = json.load(f)
    except OSError:
        oci = {}
    mounts = [
        {
            "Type": m["type"],
            "Name": m["source"] if m["type"] == "volume" else "",
            "Source": m["source"],
            "Destination": m["target"],
            "RW": not m.get("readonly"),
        }
        for m in spec.mounts
    ]
    health = None
    if spec.healthcheck:
        health = {
            "Status": state.health,
            "FailingStreak": state.health_failing,
            "Log": state.health_log,
        }
    r = spec.resources
    return {
        "Id": cid,
        "Created": spec.created,
        "Path": (oci.get("process") or {}).get("args", [""])[0],
        "Args": (oci.get("process") or {}).get("args", [])[1:],
        "State": {
            "Status": state.status,
            "Running": state.status == "running",
            "Paused": state.status == "paused",
            "Restarting": state.status == "restarting",
            "OOMKilled": state.oom_killed,
            "Dead": False,
            "Pid": state.pid if state.status in ("running", "paused") else 0,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": state.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": state.finished_at or "0001-01-01T00:00:00Z",
            **({"Health": health} if health else {}),
        },
        "Image": spec.image_id,
        "Name": "/" + spec.name,
        "RestartCount": state.restart_count,
        "Mounts": mounts,
        "Config": {
            "Hostname": (oci.get("hostname") or ""),
            "Domainname": spec.domainname,
            "User": spec.user,
            "Tty": spec.tty,
            "OpenStdin": spec.stdin_open,
            "Env": (oci.get("process") or {}).get("env", []),
            "Cmd": spec.cmd or None,
            "Entrypoint": spec.entrypoint,
            "Image": spec.image,
            "WorkingDir": spec.workdir,
            "Labels": spec.labels,
            "StopSignal": spec.stop_signal or "SIGTERM",
            "StopTimeout": spec.stop_timeout,
            "Healthcheck": spec.healthcheck,
        },
        "HostConfig": {
            "Memory": r.get("memory", 0),
            "MemorySwap": r.get("memory_swap", 0),
            "NanoCpus": int(float(r.get("cpus", 0)) * 1e9),
            "CpuShares": r.get("cpu_shares", 0),
            "CpusetCpus": r.get("cpuset_cpus", ""),
            "PidsLimit": r.get("pids_limit"),
            "ReadonlyRootfs": spec.read_only,
            "Privileged": spec.privileged,
            "CapAdd": spec.cap_add,
            "CapDrop": spec.cap_drop,
            "RestartPolicy": {"Name": spec.restart, "MaximumRetryCount": spec.restart_max},
            "AutoRemove": spec.auto_remove,
            "NetworkMode": spec.network,
            "Init": spec.init,
            "LogConfig": {"Type": "json-file", "Config": spec.log_opts},
            "Runtime": spec.runtime or "corral-runtime",
            "SecurityOpt": ([f"seccomp={spec.seccomp}"] if spec.seccomp else [])
            + (["no-new-privileges"] if spec.no_new_privileges else []),
            "Ulimits": spec.ulimits,
        },
        "NetworkSettings": networking.network_settings(root, cid, spec),
        "LogPath": os.path.join(store.dir(cid), "json.log"),
        "Corral": {"Spec": asdict(spec)},
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    from corral.engine.store import ContainerStore

    root = data_root(args)
    store = ContainerStore(root)
    docs = []
    failed = 0
    for ref in args.objects:
        try:
            docs.append(inspect_container(root, store.resolve(ref)))
            continue
        except CorralError:
            pass
        try:
            from corral.cli.image import inspect_doc, store_of

            docs.append(inspect_doc(store_of(args).image(ref)))
        except CorralError:
            print(f"corral: error: no such object: {ref}", file=sys.stderr)
            failed = 1
    if args.format:
        for doc in docs:
            print(_template(args.format, doc))
    else:
        emit_json(docs)
    return failed


def cmd_pause(args: argparse.Namespace) -> int:
    return _each(args, args.containers, lambda cid: _freeze(args, cid, True))


def cmd_unpause(args: argparse.Namespace) -> int:
    return _each(args, args.containers, lambda cid: _freeze(args, cid, False))


def _freeze(args: argparse.Namespace, cid: str, pause: bool) -> None:
    from corral.engine import lifecycle

    lifecycle.pause(data_root(args), cid, pause)


def cmd_top(args: argparse.Namespace) -> int:
    from corral.engine.runtimes import runtime_for
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))
    cid = store.resolve(args.container)
    pids = runtime_for(store.load_spec(cid).runtime).ps(cid)
    rows = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(
                    line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line
                )
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rows.append(
            [
                status.get("Uid", "?").split()[0],
                pid,
                status.get("PPid", "?"),
                cmd or f"[{status.get('Name')}]",
            ]
        )
    print(table(["UID", "PID", "PPID", "CMD"], rows))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from corral.engine import networking
    from corral.engine.store import ContainerStore

    root = data_root(args)
    store = ContainerStore(root)
    cid = store.resolve(args.container)
    with store.lock(cid):
        store.rename(cid, args.name)
        networking.renamed(root, cid, store.load_spec(cid).name)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle

    changes = _resources(args)
    restart = _restart_policy(args.restart) if args.restart else None
    if not changes and restart is None:
        raise ConfigError("update: nothing to change")
    root = data_root(args)
    return _each(args, args.containers, lambda cid: lifecycle.update(root, cid, changes, restart))


def cmd_port(args: argparse.Namespace) -> int:
    from corral.engine import networking
    from corral.engine.store import ContainerStore

    root = data_root(args)
    cid = ContainerStore(root).resolve(args.container)
    lines = networking.published(root, cid)
    if args.private:
        want = args.private if "/" in args.private else args.private + "/tcp"
        lines = [line for line in lines if line.split(" ->")[0] == want]
        if not lines:
            raise ContainerError(f"no public port '{want}' published for {args.container}")
    for line in lines:
        print(line)
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    from corral.engine import copy
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))

    def split(text: str) -> tuple[str | None, str]:
        head, sep, path = text.partition(":")
        if sep and not head.startswith(("/", ".")) and head:
            return store.resolve(head), path
        return None, text

    (src_c, src), (dst_c, dst) = split(args.src), split(args.dest)
    if (src_c is None) == (dst_c is None):
        raise ConfigError("cp: exactly one of SRC and DEST must be CONTAINER:PATH")
    if src_c is not None:
        copy.copy_out(data_root(args), src_c, src, dst)
    else:
        assert dst_c is not None
        copy.copy_in(data_root(args), dst_c, src, dst)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from corral.cli.image import human
    from corral.engine import stats
    from corral.engine.store import ContainerStore

    store = ContainerStore(data_root(args))
    ids = [store.resolve(c) for c in args.containers] if args.containers else None
    first = True
    while True:
        rows = stats.sample(data_root(args), ids)
        if args.format == "json":
            for row in rows:
                print(json.dumps(row))
        else:
            if not first and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[J")
            out = [
                [r["ID"][:12], r["Name"], f"{r['CPUPerc']:.2f}%",
                 f"{human(r['MemUsage'])} / {human(r['MemLimit']) if r['MemLimit'] else '-'}",
                 f"{r['MemPerc']:.2f}%", r["PIDs"]]
                for r in rows
            ]  # fmt: skip
            print(
                table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"], out)
            )
        sys.stdout.flush()
        if args.no_stream:
            return 0
        first = False
