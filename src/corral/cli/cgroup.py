"""`corral cgroup ...`: libcgroup's tools (lssubsys, lscgroup, cgcreate, cgset, cgget,
cgexec, cgclassify, cgdelete) with one syntax on v1 and v2, plus the article's steps."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from corral.cgroups import (
    Manager,
    Mode,
    detect,
    files_for,
    format_bytes,
    open_manager,
    parse_params,
)
from corral.cgroups.hierarchy import mount_hierarchy, unmount_hierarchy
from corral.cgroups.params import model_names
from corral.cgroups.run import CommandFailed, exec_in_group
from corral.errors import CgroupInvalid

from .render import emit_json, table

PARAM_HELP = (
    "parameters as KEY=VALUE: model names with units ("
    + ", ".join(model_names())
    + ") or kernel file names of either cgroup version (memory.limit_in_bytes, memory.max, "
    "cpu.shares, cpu.weight, ...), translated for this host"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cgroup",
        help="control groups: inspect hierarchies, create groups, set limits, run commands",
        description="Control groups, with one syntax on cgroup v1 and v2 hosts. Groups are "
        "named relative to Corral's parent group (see --cgroup-parent).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, func: object, help: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(name, help=help, description=help)
        v.set_defaults(func=func)
        return v

    v = verb(
        "subsystems", cmd_subsystems, "list subsystems (controllers) and where each is attached"
    )
    v.add_argument("--json", action="store_true")
    v = verb("hierarchies", cmd_hierarchies, "list mounted hierarchies with their subsystems")
    v.add_argument("--json", action="store_true")
    v = verb("tree", cmd_tree, "Corral's groups as a tree with task counts and usage")
    v.add_argument("group", nargs="?", help="start at this group (default: all)")
    v = verb("create", cmd_create, "create a group, optionally with limits")
    v.add_argument("-c", "--controllers", help="comma-separated controllers (default: all)")
    v.add_argument("group")
    v.add_argument("params", nargs="*", metavar="KEY=VALUE", help=PARAM_HELP)
    v = verb("delete", cmd_delete, "delete a group and its children")
    v.add_argument("-f", "--force", action="store_true", help="kill remaining tasks first")
    v.add_argument("groups", nargs="+", metavar="group")
    v = verb("set", cmd_set, "set parameters of a group")
    v.add_argument("group")
    v.add_argument("params", nargs="+", metavar="KEY=VALUE", help=PARAM_HELP)
    v = verb("get", cmd_get, "read parameters of a group (all when none are named)")
    v.add_argument("group")
    v.add_argument("keys", nargs="*", metavar="KEY")
    v = verb("exec", cmd_exec, "run a command in a group (created if missing)")
    v.add_argument("--rm", action="store_true", help="delete the group when the command ends")
    v.add_argument("-c", "--controllers", help="controllers for a new group (default: all)")
    v.add_argument("-q", "--quiet", action="store_true", help="do not describe the group")
    v.add_argument("group")
    v.add_argument("rest", nargs=argparse.REMAINDER, metavar="[KEY=VALUE...] -- CMD...")
    v = verb("classify", cmd_classify, "move processes into a group")
    v.add_argument("--threads", action="store_true", help="move single threads (v1 tasks)")
    v.add_argument("group")
    v.add_argument("pids", nargs="+", type=_pid, metavar="PID")
    v = verb("tasks", cmd_tasks, "list the processes in a group")
    v.add_argument("-r", "--recursive", action="store_true")
    v.add_argument("group")
    v = verb("freeze", cmd_freeze, "suspend every task in a group")
    v.add_argument("group")
    v = verb("thaw", cmd_thaw, "resume a frozen group")
    v.add_argument("group")
    v = verb("kill", cmd_kill, "signal every task in a group and its children")
    v.add_argument("-s", "--signal", default="KILL")
    v.add_argument("group")
    v = verb("stats", cmd_stats, "usage figures of a group")
    v.add_argument("--json", action="store_true")
    v.add_argument("group")
    v = verb("mount", cmd_mount, "create a v1 hierarchy with chosen subsystems and mount it")
    v.add_argument("-s", "--subsystems", default="", help="comma-separated, e.g. net_cls,net_prio")
    v.add_argument("--name", help="name a hierarchy (required with no subsystems)")
    v.add_argument("path", type=Path)
    v = verb("umount", cmd_umount, "unmount a hierarchy that `corral cgroup mount` mounted")
    v.add_argument("path", type=Path)


def _pid(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pid: {text!r}") from None


def _manager(args: argparse.Namespace) -> Manager:
    return open_manager(parent=args.cgroup_parent)


def _version(m: Manager) -> int:
    return 2 if m.mode == Mode.V2 else 1


def cmd_subsystems(args: argparse.Namespace) -> int:
    layout = detect()
    rows: list[tuple[str, int, int | None, str, str]] = []
    for s in layout.subsystems:
        h = layout.hierarchy_of(s.name)
        if h is not None:
            where = str(h.mountpoint)
        elif layout.unified and s.name in layout.unified.subsystems:
            where = f"{layout.unified.mountpoint} (v2)"
        else:
            where = "not attached"
        rows.append((s.name, s.hierarchy_id, s.num_cgroups, "yes" if s.enabled else "no", where))
    if layout.unified:
        for c in layout.unified.subsystems:
            if c not in {s.name for s in layout.subsystems}:
                rows.append((c, 0, None, "yes", f"{layout.unified.mountpoint} (v2)"))
    if args.json:
        keys = ("subsystem", "hierarchy", "groups", "enabled", "mounted_at")
        emit_json([dict(zip(keys, r, strict=True)) for r in rows])
    else:
        print(table(("SUBSYSTEM", "HIERARCHY", "GROUPS", "ENABLED", "MOUNTED AT"), rows))
    return 0


def cmd_hierarchies(args: argparse.Namespace) -> int:
    layout = detect()
    counts = {s.hierarchy_id: s.num_cgroups for s in layout.subsystems}
    rows = []
    for h in layout.hierarchies:
        groups = counts.get(h.id, "-") if h.version == 1 and h.id else "-"
        rows.append((h.id, f"v{h.version}", h.label, str(h.mountpoint), groups, layout.own_path(h)))
    if args.json:
        keys = ("id", "version", "subsystems", "mountpoint", "groups", "own_cgroup")
        emit_json(
            {
                "mode": layout.mode,
                "hierarchies": [dict(zip(keys, r, strict=True)) for r in rows],
            }
        )
        return 0
    print(f"cgroup mode: {layout.mode}")
    print(table(("ID", "VERSION", "SUBSYSTEMS", "MOUNT POINT", "GROUPS", "THIS PROCESS IN"), rows))
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    m = _manager(args)
    rows: list[tuple[str, object, str, str, object]] = []

    def walk(group: str, depth: int) -> None:
        st = m.stats(group)
        cpu = f"{st.cpu_usage_ns / 1e9:.2f}s" if st.cpu_usage_ns is not None else "-"
        label = "  " * depth + ("└ " if depth else "") + group.rsplit("/", 1)[-1]
        rows.append(
            (label, len(m.tasks(group)), format_bytes(st.memory_usage), cpu, st.pids_current)
        )
        for child in m.children(group):
            walk(child, depth + 1)

    roots = [args.group] if args.group else m.children()
    for g in roots:
        walk(g, 0)
    print(f"parent: {m.cgroup_path('x').rsplit('/', 1)[0]} ({m.mode})")
    if rows:
        print(table(("GROUP", "TASKS", "MEMORY", "CPU", "PIDS"), rows))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    m = _manager(args)
    controllers = args.controllers.split(",") if args.controllers else None
    m.create(args.group, parse_params(args.params, _version(m)), controllers)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    m = _manager(args)
    for g in args.groups:
        m.delete(g, force=args.force)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    m = _manager(args)
    m.apply(args.group, parse_params(args.params, _version(m)))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    m = _manager(args)
    if not args.keys:
        for key, value in m.parameters(args.group).items():
            _print_param(key, value)
        return 0
    for key in args.keys:
        for file in files_for(key, _version(m)):
            _print_param(file, m.get(args.group, file))
    return 0


def _print_param(key: str, value: str) -> None:
    if "\n" in value:
        print(f"{key}:")
        for line in value.splitlines():
            print(f"    {line}")
    else:
        print(f"{key}: {value}")


def cmd_exec(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if "--" in rest:
        cut = rest.index("--")
        params, command = rest[:cut], rest[cut + 1 :]
    else:
        params = []
        while rest and "=" in rest[0] and not rest[0].startswith("-"):
            params.append(rest.pop(0))
        command = rest
    if not command:
        raise CgroupInvalid("no command given: corral cgroup exec GROUP [KEY=VALUE...] -- CMD...")
    m = _manager(args)
    resources = parse_params(params, _version(m))
    created = False
    if not m.exists(args.group):
        controllers = args.controllers.split(",") if args.controllers else None
        m.create(args.group, resources, controllers)
        created = True
    elif params:
        m.apply(args.group, resources)
    try:
        if not args.quiet:
            st = m.stats(args.group)
            print(
                f"corral: running {' '.join(command)!r} in group {args.group} "
                f"({m.cgroup_path(args.group)}): memory limit {format_bytes(st.memory_limit)}, "
                f"pids limit {st.pids_limit if st.pids_limit is not None else 'max'}",
                file=sys.stderr,
            )
        try:
            return exec_in_group(m, args.group, command)
        except CommandFailed as err:
            print(f"corral: error: {err}", file=sys.stderr)
            return err.exit_code
    finally:
        if args.rm and (created or m.exists(args.group)):
            m.delete(args.group, force=True)


def cmd_classify(args: argparse.Namespace) -> int:
    m = _manager(args)
    for pid in args.pids:
        if args.threads:
            m.add_thread(args.group, pid)
        else:
            m.add_process(args.group, pid)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    m = _manager(args)
    if not m.exists(args.group):
        m.tasks(args.group)  # validates the name
        raise CgroupInvalid(f"no such group {args.group!r}")
    for pid in m.tasks(args.group, recursive=args.recursive):
        print(pid)
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    _manager(args).freeze(args.group)
    return 0


def cmd_thaw(args: argparse.Namespace) -> int:
    _manager(args).thaw(args.group)
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    name = args.signal.upper()
    try:
        sig = int(name) if name.isdigit() else signal.Signals["SIG" + name.removeprefix("SIG")]
    except KeyError:
        raise CgroupInvalid(f"unknown signal {args.signal!r}") from None
    _manager(args).kill(args.group, int(sig))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    st = _manager(args).stats(args.group)
    if args.json:
        emit_json(st.as_dict())
        return 0

    def secs(ns: int | None) -> str:
        return "-" if ns is None else f"{ns / 1e9:.3f}s"

    def num(n: int | None, unlimited: str = "-") -> str:
        return unlimited if n is None else str(n)

    rows = [
        ("cpu usage", secs(st.cpu_usage_ns)),
        ("cpu user / system", f"{secs(st.cpu_user_ns)} / {secs(st.cpu_system_ns)}"),
        ("cpu throttled", f"{num(st.cpu_throttled_periods)} periods, {secs(st.cpu_throttled_ns)}"),
        ("memory usage", format_bytes(st.memory_usage)),
        ("memory peak", format_bytes(st.memory_peak)),
        ("memory limit", "max" if st.memory_limit is None else format_bytes(st.memory_limit)),
        ("oom events", num(st.oom_events, "- (not reported on v1)")),
        ("oom kills", num(st.oom_kills)),
        ("pids", f"{num(st.pids_current)} / {num(st.pids_limit, 'max')}"),
        (
            "io read / write",
            f"{format_bytes(st.io_read_bytes)} / {format_bytes(st.io_write_bytes)}",
        ),
    ]
    print(table(("STAT", "VALUE"), rows))
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    subsystems = [s for s in args.subsystems.split(",") if s]
    plan = mount_hierarchy(args.path, subsystems, args.name)
    print(f"mounted a cgroup v1 hierarchy with {plan.options} at {args.path}")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    unmount_hierarchy(args.path)
    return 0
