"""`corral-runtime`: runc's command line over Corral's OCI runtime.

Callers that drive runc (containerd's shim, conmon/podman, docker) drive this unchanged:
the same global flags, commands, flags (`--flag value`, `--flag=value`, `-flag`), exit
codes, error lines in --log (text or JSON). Argument parsing is hand-written and small:
this process starts several times per container, so it imports as little as it can.
"""

from __future__ import annotations

import os
import sys
import time

from corral import __version__, fastjson
from corral.errors import CorralError
from corral.oci import SPEC_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

USAGE = """corral-runtime: an OCI runtime (runc's command line)

usage: corral-runtime [global options] COMMAND [options] [arguments]

global options:
  --root DIR            state directory (default /run/corral)
  --log FILE            append errors and warnings here (default: stderr only)
  --log-format FORMAT   text or json
  --debug               log debug messages too
  --systemd-cgroup      accepted; Corral has no systemd cgroup driver and uses cgroupfs
  --rootless VALUE      accepted (true|false|auto); Corral runs as root
  --criu PATH           accepted; checkpoint/restore is not supported
  -v, --version         print the version

commands:
  create    create a container from a bundle (waits for start)
  start     start a created container
  run       create and start a container (waits for it unless --detach)
  state     print a container's state as JSON
  kill      send a signal to a container's init (or --all processes)
  delete    delete a container (--force kills it first)
  exec      run a new process in a running container
  ps        list a container's processes
  list      list containers
  pause     freeze every process of a container
  resume    thaw a paused container
  update    change a container's resource limits
  events    print resource usage (and OOM) events
  features  print the features this runtime supports (JSON)
  spec      write a default config.json
"""

# name -> (aliases, kind); kind: bool, str, int, list
Flags = dict[str, tuple[tuple[str, ...], str]]

GLOBAL_FLAGS: Flags = {
    "root": (("--root",), "str"),
    "log": (("--log",), "str"),
    "log-format": (("--log-format",), "str"),
    "debug": (("--debug",), "bool"),
    "systemd-cgroup": (("--systemd-cgroup",), "bool"),
    "rootless": (("--rootless",), "str"),
    "criu": (("--criu",), "str"),
    "version": (("--version", "-v"), "bool"),
    "help": (("--help", "-h"), "bool"),
}
_CREATE: Flags = {
    "bundle": (("--bundle", "-b"), "str"),
    "pid-file": (("--pid-file",), "str"),
    "console-socket": (("--console-socket",), "str"),
    "no-pivot": (("--no-pivot",), "bool"),
    "no-new-keyring": (("--no-new-keyring",), "bool"),
    "preserve-fds": (("--preserve-fds",), "int"),
}
COMMAND_FLAGS: dict[str, Flags] = {
    "create": _CREATE,
    "run": {**_CREATE, "detach": (("--detach", "-d"), "bool"), "keep": (("--keep",), "bool")},
    "start": {},
    "state": {},
    "kill": {"all": (("--all", "-a"), "bool")},
    "delete": {"force": (("--force", "-f"), "bool")},
    "exec": {
        "process": (("--process", "-p"), "str"),
        "detach": (("--detach", "-d"), "bool"),
        "tty": (("--tty", "-t"), "bool"),
        "pid-file": (("--pid-file",), "str"),
        "console-socket": (("--console-socket",), "str"),
        "env": (("--env", "-e"), "list"),
        "cwd": (("--cwd",), "str"),
        "user": (("--user", "-u"), "str"),
        "additional-gids": (("--additional-gids", "-g"), "list"),
        "cap": (("--cap", "-c"), "list"),
        "no-new-privs": (("--no-new-privs",), "bool"),
        "apparmor": (("--apparmor",), "str"),
        "process-label": (("--process-label",), "str"),
        "preserve-fds": (("--preserve-fds",), "int"),
        "cgroup": (("--cgroup",), "list"),
    },
    "ps": {"format": (("--format", "-f"), "str")},
    "list": {"format": (("--format", "-f"), "str"), "quiet": (("--quiet", "-q"), "bool")},
    "pause": {},
    "resume": {},
    "update": {
        "resources": (("--resources", "-r"), "str"),
        "memory": (("--memory",), "str"),
        "memory-swap": (("--memory-swap",), "str"),
        "memory-reservation": (("--memory-reservation",), "str"),
        "kernel-memory": (("--kernel-memory",), "str"),
        "kernel-memory-tcp": (("--kernel-memory-tcp",), "str"),
        "cpu-shares": (("--cpu-shares",), "str"),
        "cpu-quota": (("--cpu-quota",), "str"),
        "cpu-period": (("--cpu-period",), "str"),
        "cpu-rt-period": (("--cpu-rt-period",), "str"),
        "cpu-rt-runtime": (("--cpu-rt-runtime",), "str"),
        "cpuset-cpus": (("--cpuset-cpus",), "str"),
        "cpuset-mems": (("--cpuset-mems",), "str"),
        "pids-limit": (("--pids-limit",), "str"),
        "blkio-weight": (("--blkio-weight",), "str"),
        "l3-cache-schema": (("--l3-cache-schema",), "str"),
        "mem-bw-schema": (("--mem-bw-schema",), "str"),
    },
    "events": {"stats": (("--stats",), "bool"), "interval": (("--interval",), "str")},
    "features": {},
    "spec": {"bundle": (("--bundle", "-b"), "str"), "rootless": (("--rootless",), "bool")},
}


class UsageError(CorralError):
    pass


def parse_flags(args: Sequence[str], flags: Flags) -> tuple[dict[str, Any], list[str]]:
    """Flags up to the first positional argument (urfave/cli's rule, which runc follows)."""
    by_alias: dict[str, str] = {}
    for name, (aliases, _kind) in flags.items():
        for alias in aliases:
            by_alias[alias] = name
            if alias.startswith("--"):
                by_alias[alias[1:]] = name  # -root works too
    opts: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return opts, list(args[i + 1 :])
        if not arg.startswith("-") or arg == "-":
            return opts, list(args[i:])
        key, eq, value = arg.partition("=")
        found = by_alias.get(key)
        if found is None:
            raise UsageError(f"flag provided but not defined: {key}")
        name = found
        kind = flags[name][1]
        if kind == "bool":
            opts[name] = value.lower() not in ("false", "0") if eq else True
        else:
            if not eq:
                i += 1
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: {key}")
                value = args[i]
            if kind == "int":
                try:
                    opts[name] = int(value)
                except ValueError:
                    raise UsageError(
                        f"invalid value {value!r} for flag {key}: not an integer"
                    ) from None
            elif kind == "list":
                opts.setdefault(name, []).append(value)
            else:
                opts[name] = value
        i += 1
    return opts, []


class Log:
    """Errors and warnings to stderr and, with --log, to the log file in runc's formats."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path = path
        self.json = fmt == "json"
        self.debug_on = debug

    def _write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.json:
            line = fastjson.dumps({"level": level, "msg": msg, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg={fastjson.dumps(msg)}'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self._write("error", msg)
        print(msg, file=sys.stderr)

    def warn(self, msg: str) -> None:
        self._write("warning", msg)
        print(f"corral-runtime: warning: {msg}", file=sys.stderr)

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._write("debug", msg)


def _one_id(pos: list[str], command: str) -> str:
    if len(pos) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument: the container id')
    return pos[0]


def parse_signal(text: str) -> int:
    import signal

    name = text.upper()
    if name.isdigit():
        number = int(name)
        if not 0 < number < 65:
            raise UsageError(f"invalid signal {text!r}")
        return number
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        gopts, rest = parse_flags(args, GLOBAL_FLAGS)
    except UsageError as err:
        print(f"corral-runtime: {err}", file=sys.stderr)
        return 2
    if gopts.get("version"):
        print(f"corral-runtime version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}")
        return 0
    if gopts.get("help") or not rest or rest[0] in ("help", "--help", "-h"):
        print(USAGE, end="")
        return 0 if (gopts.get("help") or rest) else 2
    command, cargs = rest[0], rest[1:]
    log = Log(gopts.get("log"), gopts.get("log-format") or "text", bool(gopts.get("debug")))
    if command not in COMMAND_FLAGS:
        log.error(f"corral-runtime: no such command {command!r}")
        return 2
    handler = COMMANDS[command]
    if command in ("create", "run", "exec"):
        from corral.cgroups import warmup

        warmup.start()  # a head start on the kernel's cgroup-migration grace period
    try:
        opts, pos = parse_flags(cargs, COMMAND_FLAGS[command])
        if gopts.get("criu"):
            log.debug("--criu is accepted, but checkpoint/restore is not supported")
        if gopts.get("rootless") == "true" and os.geteuid() != 0:
            raise UsageError("--rootless true: Corral does not run rootless containers yet")
        return handler(gopts, opts, pos, log)
    except UsageError as err:
        log.error(f"corral-runtime {command}: {err}")
        return 2
    except CorralError as err:
        log.error(str(err))
        code = getattr(err, "exit_code", 1)
        return code if command in ("run", "exec") else 1
    except KeyboardInterrupt:
        return 130


def _commit() -> str:
    return os.environ.get("CORRAL_COMMIT", "unknown")


def _runtime(gopts: dict[str, Any], log: Log) -> Any:
    from corral.runtime.container import Runtime
    from corral.runtime.state import DEFAULT_ROOT

    return Runtime(gopts.get("root") or DEFAULT_ROOT, log.warn, bool(gopts.get("systemd-cgroup")))


if TYPE_CHECKING:
    Handler = Callable[[dict[str, Any], dict[str, Any], list[str], Log], int]


def cmd_create(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    cid = _one_id(pos, "create")
    _runtime(g, log).create(
        cid,
        o.get("bundle") or os.getcwd(),
        pid_file=o.get("pid-file"),
        console_socket=o.get("console-socket"),
        no_pivot=bool(o.get("no-pivot")),
        no_new_keyring=bool(o.get("no-new-keyring")),
        preserve_fds=int(o.get("preserve-fds", 0)),
    )
    return 0


def cmd_run(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    cid = _one_id(pos, "run")
    return int(
        _runtime(g, log).run(
            cid,
            o.get("bundle") or os.getcwd(),
            detach=bool(o.get("detach")),
            pid_file=o.get("pid-file"),
            console_socket=o.get("console-socket"),
            no_pivot=bool(o.get("no-pivot")),
            no_new_keyring=bool(o.get("no-new-keyring")),
            preserve_fds=int(o.get("preserve-fds", 0)),
            keep=bool(o.get("keep")),
        )
    )


def cmd_start(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    _runtime(g, log).start(_one_id(pos, "start"))
    return 0


def cmd_state(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    import json

    print(json.dumps(_runtime(g, log).state(_one_id(pos, "state")), indent=2))
    return 0


def cmd_kill(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    if not 1 <= len(pos) <= 2:
        raise UsageError('"kill" requires the container id and an optional signal')
    sig = parse_signal(pos[1]) if len(pos) == 2 else 15
    _runtime(g, log).kill(pos[0], sig, bool(o.get("all")))
    return 0


def cmd_delete(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    if not pos:
        raise UsageError('"delete" requires at least 1 argument: the container id')
    rt = _runtime(g, log)
    for cid in pos:
        rt.delete(cid, force=bool(o.get("force")))
    return 0


def cmd_pause(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    _runtime(g, log).pause(_one_id(pos, "pause"))
    return 0


def cmd_resume(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    _runtime(g, log).resume(_one_id(pos, "resume"))
    return 0


def cmd_ps(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    if not pos:
        raise UsageError('"ps" requires the container id')
    pids = _runtime(g, log).pids(pos[0])
    fmt = o.get("format", "table")
    if fmt == "json":
        print(fastjson.dumps(pids))
        return 0
    if fmt != "table":
        raise UsageError(f"invalid format {fmt!r} (table or json)")
    import subprocess

    out = subprocess.run(["ps", *(pos[1:] or ["-ef"])], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise UsageError("ps output has no PID column") from None
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            print(line)
    return 0


def cmd_list(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    states = _runtime(g, log).list_containers()
    if o.get("quiet"):
        for s in states:
            print(s["id"])
        return 0
    if o.get("format") == "json":
        print(fastjson.dumps(states))
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [
        (s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s.get("owner") or "root")
        for s in states
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_update(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    from corral.cgroups import parse_bytes
    from corral.cgroups.resources import Resources
    from corral.cgroups.units import UNLIMITED
    from corral.runtime.config import resources_from_json

    cid = _one_id(pos, "update")
    resources = Resources()
    if o.get("resources"):
        src = o["resources"]
        try:
            if src == "-":
                text = sys.stdin.read()
            else:
                with open(src) as f:
                    text = f.read()
            data = fastjson.loads(text)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read resources from {src!r}: {err}") from err
        resources = resources_from_json(data)

    def num(key: str) -> int | None:
        if key not in o:
            return None
        try:
            return int(o[key])
        except ValueError:
            raise UsageError(f"invalid value {o[key]!r} for --{key}") from None

    def size(key: str) -> int | None:
        return None if key not in o else parse_bytes(o[key], f"--{key}")

    pids = num("pids-limit")
    for unsupported in ("l3-cache-schema", "mem-bw-schema"):
        if unsupported in o:
            raise UsageError(f"--{unsupported}: Intel RDT (resctrl) is not supported by Corral")
    for ignored in ("kernel-memory", "kernel-memory-tcp"):
        if ignored in o:  # deprecated by the kernel; runc ignores it as well
            log.warn(f"--{ignored} is deprecated by the kernel and was ignored")
    raw = []
    if "cpu-rt-period" in o:
        raw.append(("cpu.rt_period_us", str(num("cpu-rt-period"))))
    if "cpu-rt-runtime" in o:
        raw.append(("cpu.rt_runtime_us", str(num("cpu-rt-runtime"))))
    flags = Resources(
        memory_limit=size("memory"),
        memory_swap=size("memory-swap"),
        memory_reservation=size("memory-reservation"),
        cpu_shares=num("cpu-shares"),
        cpu_quota=num("cpu-quota"),
        cpu_period=num("cpu-period"),
        cpuset_cpus=o.get("cpuset-cpus"),
        cpuset_mems=o.get("cpuset-mems"),
        pids_limit=None if pids is None else (UNLIMITED if pids <= 0 else pids),
        blkio_weight=num("blkio-weight"),
        raw=tuple(raw),
    )
    _runtime(g, log).update(cid, resources.merged(flags))
    return 0


def cmd_events(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    cid = _one_id(pos, "events")
    rt = _runtime(g, log)
    interval = _duration(o.get("interval", "5s"))
    last_oom = None
    while True:
        stats = rt.stats(cid)
        if o.get("stats"):
            print(fastjson.dumps({"type": "stats", "id": cid, "data": stats}), flush=True)
            return 0
        oom = stats["memory"]["oom_kill"]
        if last_oom is not None and oom > last_oom:
            print(fastjson.dumps({"type": "oom", "id": cid}), flush=True)
        last_oom = oom
        print(fastjson.dumps({"type": "stats", "id": cid, "data": stats}), flush=True)
        time.sleep(interval)
        if rt.state(cid)["status"] == "stopped":
            return 0


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
            if value <= 0:
                break
            return value
    raise UsageError(f"invalid interval {text!r} (like 5s or 500ms)")


def cmd_features(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    from corral.kernel.caps import CAPABILITIES
    from corral.runtime.config import RECURSIVE_ATTRS
    from corral.runtime.seccomp import ACTIONS

    try:
        from corral.kernel.seccomp import COMPARE_OPS, version

        seccomp: dict[str, Any] = {
            "enabled": True,
            "actions": list(ACTIONS),
            "operators": sorted(COMPARE_OPS),
            "archs": [
                "SCMP_ARCH_X86",
                "SCMP_ARCH_X86_64",
                "SCMP_ARCH_X32",
                "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_ARM",
            ],
            "supportedFlags": [
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ],
        }
        libseccomp = version()
    except CorralError:
        seccomp, libseccomp = {"enabled": False}, ""
    from corral.kernel.mount import _FLAG_OPTIONS, _PROPAGATION_OPTIONS

    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
        "mountOptions": sorted(
            set(_FLAG_OPTIONS) | set(_PROPAGATION_OPTIONS) | set(RECURSIVE_ATTRS)
        ),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp,
            "apparmor": {"enabled": os.path.isdir("/sys/kernel/security/apparmor")},
            "selinux": {"enabled": os.path.isdir("/sys/fs/selinux")},
        },
        "annotations": {
            "org.corral.runtime.version": __version__,
            "io.github.seccomp.libseccomp.version": libseccomp,
        },
    }
    import json

    print(json.dumps(features, indent=4))
    return 0


def cmd_spec(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    from corral.oci.defaults import default_spec

    bundle = o.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first.")
    import json

    spec = default_spec(bool(o.get("rootless")), os.getuid(), os.getgid())
    with open(path, "w") as f:
        json.dump(spec, f, indent=4)
        f.write("\n")
    return 0


def cmd_exec(g: dict[str, Any], o: dict[str, Any], pos: list[str], log: Log) -> int:
    from corral.runtime.execspec import build_exec_process

    if not pos:
        raise UsageError('"exec" requires the container id')
    if o.get("cgroup"):
        raise UsageError("--cgroup (exec into a sub-cgroup) is not supported by Corral")
    if o.get("process-label") and not os.path.isdir("/sys/fs/selinux"):
        raise UsageError("--process-label needs SELinux, which is not enabled on this host")
    rt = _runtime(g, log)
    cid, args = pos[0], pos[1:]
    process = build_exec_process(rt, cid, o, args)
    return int(
        rt.exec(
            cid,
            process,
            detach=bool(o.get("detach")),
            pid_file=o.get("pid-file"),
            console_socket=o.get("console-socket"),
            preserve_fds=int(o.get("preserve-fds", 0)),
        )
    )


COMMANDS: dict[str, Handler] = {
    "create": cmd_create,
    "run": cmd_run,
    "start": cmd_start,
    "state": cmd_state,
    "kill": cmd_kill,
    "delete": cmd_delete,
    "exec": cmd_exec,
    "ps": cmd_ps,
    "list": cmd_list,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "update": cmd_update,
    "events": cmd_events,
    "features": cmd_features,
    "spec": cmd_spec,
}


if __name__ == "__main__":
    sys.exit(main())
