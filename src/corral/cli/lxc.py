"""`corral lxc VERB`: LXC's tools (lxc-create, lxc-start, ...) with their options, over
Corral's engine. The container's name is `-n NAME` (or the first word, as LXC allows)."""

from __future__ import annotations

import argparse
import sys

from corral.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corral.lxc.manager import Lxc

    Verbs = argparse._SubParsersAction[argparse.ArgumentParser]

FANCY_COLUMNS = ("NAME", "STATE", "AUTOSTART", "GROUPS", "IPV4", "IPV6", "UNPRIVILEGED")


def _named(p: argparse.ArgumentParser, positional: bool = True) -> None:
    p.add_argument("-n", "--name", dest="name_opt", metavar="NAME")
    if positional:
        p.add_argument("name_pos", nargs="?", metavar="NAME")
    else:  # a command follows: `NAME -- CMD` is split by _name_and_command
        p.set_defaults(name_pos=None)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], argv: Sequence[str] = ()
) -> None:
    """`corral lxc`; of its verbs, only the one `argv` (what follows `lxc`) names, if it
    names one: building all fifteen parsers costs more than some verbs' work."""
    group = sub.add_parser("lxc", help="LXC-style system containers (lxc-create, lxc-start...)")
    group.add_argument("-P", "--lxcpath", default="", help="containers' directory "
                       "(default <data-root>/lxc)")  # fmt: skip
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    wanted = _verb_of(argv)
    for verb, build in VERBS.items():
        if wanted in (None, verb) or (verb == "freeze" and wanted == "unfreeze"):
            build(verbs)


def _verb_of(argv: Sequence[str]) -> str | None:
    """The first word of `corral lxc`'s arguments (past -P DIR), if it names a verb."""
    rest = list(argv)
    while rest and rest[0] in ("-P", "--lxcpath"):
        rest = rest[2:]
    if rest and rest[0].startswith("--lxcpath="):
        rest = rest[1:]
    verb = rest[0] if rest else None
    known = verb in VERBS or verb == "unfreeze"
    return verb if known else None


def _verb_create(verbs: Verbs) -> None:
    p = verbs.add_parser("create", help="create a container from a template")
    _named(p, positional=False)
    p.add_argument("-t", "--template", required=True, help="busybox, debian, host, oci (or none)")
    p.add_argument("-f", "--config", default="", help="a config file to start from")
    p.add_argument("--network", default="", help="the Corral network for lxc.net.0 "
                   "(default: the default bridge)")  # fmt: skip
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- TEMPLATE OPTIONS")
    p.set_defaults(func=cmd_create)


def _verb_destroy(verbs: Verbs) -> None:
    p = verbs.add_parser("destroy", help="remove a container")
    _named(p)
    p.add_argument("-f", "--force", action="store_true", help="stop it first if running")
    p.add_argument("-s", "--snapshots", action="store_true", help="also its snapshot copies")
    p.set_defaults(func=cmd_destroy)


def _verb_start(verbs: Verbs) -> None:
    p = verbs.add_parser("start", help="start a container (in the background)")
    _named(p)
    p.add_argument("-d", "--daemon", action="store_true", help="in the background (default)")
    p.add_argument("-F", "--foreground", action="store_true", help="on this terminal")
    p.add_argument("-f", "--rcfile", default="", help="this config file instead of its own")
    p.set_defaults(func=cmd_start)


def _verb_stop(verbs: Verbs) -> None:
    p = verbs.add_parser("stop", help="halt a container (its halt signal, then kill)")
    _named(p)
    p.add_argument("-t", "--timeout", type=int, default=60, help="seconds before killing")
    p.add_argument("-k", "--kill", action="store_true", help="kill at once (lxc.signal.stop)")
    p.set_defaults(func=cmd_stop)


def _verb_execute(verbs: Verbs) -> None:
    p = verbs.add_parser("execute", help="run a command as an application container")
    _named(p, positional=False)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND")
    p.set_defaults(func=cmd_execute)


def _verb_attach(verbs: Verbs) -> None:
    p = verbs.add_parser("attach", help="run a command inside a running container")
    _named(p, positional=False)
    p.add_argument("--clear-env", action="store_true", help="not the caller's environment")
    p.add_argument("--keep-env", action="store_true", help="the caller's environment (default)")
    p.add_argument("-v", "--set-var", action="append", default=[], metavar="VAR=VALUE")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND (default: a shell)")
    p.set_defaults(func=cmd_attach)


def _verb_cgroup(verbs: Verbs) -> None:
    p = verbs.add_parser("cgroup", help="read or set a cgroup value of a running container")
    p.add_argument("-n", "--name", dest="name_opt", metavar="NAME")
    p.add_argument("words", nargs="+", metavar="[NAME] KEY [VALUE]")
    p.set_defaults(func=cmd_cgroup)


def _verb_ls(verbs: Verbs) -> None:
    p = verbs.add_parser("ls", help="list containers")
    p.add_argument("-f", "--fancy", action="store_true", help="a table")
    p.add_argument("-F", "--fancy-format", default="", help="columns, comma separated")
    p.add_argument("--running", action="store_true")
    p.add_argument("--stopped", action="store_true")
    p.add_argument("--frozen", action="store_true")
    p.add_argument("-1", dest="one", action="store_true", help="one name per line")
    p.set_defaults(func=cmd_ls)


def _verb_info(verbs: Verbs) -> None:
    p = verbs.add_parser("info", help="state, pid, addresses, usage")
    _named(p)
    p.add_argument("-s", "--state", action="store_true", help="only the state")
    p.add_argument("-p", "--pid", action="store_true", help="only the pid")
    p.add_argument("-i", "--ips", action="store_true", help="only the addresses")
    p.add_argument("-H", "--no-humanize", action="store_true")
    p.set_defaults(func=cmd_info)


def _verb_freeze(verbs: Verbs) -> None:
    for verb, frozen in (("freeze", True), ("unfreeze", False)):
        p = verbs.add_parser(verb, help=f"{verb} all processes of a container")
        _named(p)
        p.set_defaults(func=cmd_freeze, frozen=frozen)


def _verb_console(verbs: Verbs) -> None:
    p = verbs.add_parser("console", help="the container's console (ctrl-a q to leave)")
    _named(p)
    p.add_argument("-e", "--escape", default="a", help="escape letter: ctrl-LETTER, then q")
    p.add_argument("-t", "--tty", type=int, default=0, help="only 0, the console")
    p.set_defaults(func=cmd_console)


def _verb_wait(verbs: Verbs) -> None:
    p = verbs.add_parser("wait", help="until a container is in one of the states")
    _named(p)
    p.add_argument("-s", "--state", required=True, help="e.g. 'RUNNING|STOPPED'")
    p.add_argument("-t", "--timeout", type=float, default=-1, help="seconds (default forever)")
    p.set_defaults(func=cmd_wait)


def _verb_copy(verbs: Verbs) -> None:
    p = verbs.add_parser("copy", help="clone a container (-s: an overlay snapshot)")
    _named(p)
    p.add_argument("-N", "--newname", required=True)
    p.add_argument("-s", "--snapshot", action="store_true")
    p.add_argument("-B", "--backingstorage", default="", help="overlay (with -s) or dir")
    p.set_defaults(func=cmd_copy)


def _verb_autostart(verbs: Verbs) -> None:
    p = verbs.add_parser("autostart", help="start the containers marked lxc.start.auto")
    p.add_argument("-a", "--all", action="store_true", help="every group, and no group")
    p.add_argument("-g", "--groups", default="", help="only these lxc.group names")
    p.add_argument("-L", "--list", action="store_true", help="only list them")
    p.set_defaults(func=cmd_autostart)


VERBS: dict[str, Callable[[Verbs], None]] = {
    "create": _verb_create,
    "destroy": _verb_destroy,
    "start": _verb_start,
    "stop": _verb_stop,
    "execute": _verb_execute,
    "attach": _verb_attach,
    "cgroup": _verb_cgroup,
    "ls": _verb_ls,
    "info": _verb_info,
    "freeze": _verb_freeze,
    "console": _verb_console,
    "wait": _verb_wait,
    "copy": _verb_copy,
    "autostart": _verb_autostart,
}


def _lxc(args: argparse.Namespace) -> Lxc:
    from corral.lxc.manager import Lxc
    from corral.paths import data_root

    return Lxc(getattr(args, "data_root", None) or data_root(), args.lxcpath)


def _name(args: argparse.Namespace) -> str:
    name: str | None = args.name_opt or args.name_pos
    if not name:
        raise ConfigError("a container name is needed (-n NAME)")
    return name


def _after_dashes(words: list[str]) -> list[str]:
    return words[1:] if words and words[0] == "--" else words


def _name_and_command(args: argparse.Namespace) -> tuple[str, list[str]]:
    """`-n NAME [--] CMD...` or `NAME [--] CMD...`."""
    words = list(args.command)
    name = args.name_opt
    if not name and words and words[0] != "--":
        name = words.pop(0)
    if not name:
        raise ConfigError("a container name is needed (-n NAME)")
    return name, _after_dashes(words)


def cmd_create(args: argparse.Namespace) -> int:
    name, template_args = _name_and_command(args)
    _lxc(args).create(name, args.template, template_args, args.config, args.network)
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    for name in _lxc(args).destroy(_name(args), args.force, args.snapshots):
        print(f"Destroyed container {name}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    lxc = _lxc(args)
    name = _name(args)
    lxc.start(name, args.rcfile)
    if not args.foreground:
        return 0
    return lxc.attach_console(lxc.cid(name), b"\x01q")


def cmd_stop(args: argparse.Namespace) -> int:
    _lxc(args).stop(_name(args), args.timeout, args.kill)
    return 0


def cmd_execute(args: argparse.Namespace) -> int:
    name, command = _name_and_command(args)
    if not command:
        raise ConfigError("execute needs a command: -- COMMAND")
    return _lxc(args).execute(name, command)


def cmd_attach(args: argparse.Namespace) -> int:
    if args.clear_env and args.keep_env:
        raise ConfigError("--clear-env and --keep-env exclude each other")
    for item in args.set_var:
        if "=" not in item:
            raise ConfigError(f"-v {item!r}: expected VAR=VALUE")
    name, command = _name_and_command(args)
    return _lxc(args).attach(name, command, args.clear_env, args.set_var)


def cmd_cgroup(args: argparse.Namespace) -> int:
    words = list(args.words)
    name = args.name_opt or (words.pop(0) if len(words) > 1 else "")
    if not name or not words or len(words) > 2:
        raise ConfigError("usage: corral lxc cgroup -n NAME KEY [VALUE]")
    rows = _lxc(args).cgroup(name, words[0], words[1] if len(words) == 2 else None)
    for file, value in rows:
        print(value if len(rows) == 1 else f"{file}: {value}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from corral.cli.render import table

    lxc = _lxc(args)
    wanted = {s for s, on in (("RUNNING", args.running), ("STOPPED", args.stopped),
                              ("FROZEN", args.frozen)) if on}  # fmt: skip
    rows = []
    for name in lxc.names():
        try:
            state = lxc.state(name)
        except Exception:
            state = "BROKEN"
        if wanted and state not in wanted:
            continue
        rows.append((name, state))
    if not (args.fancy or args.fancy_format):
        names = [r[0] for r in rows]
        if names:  # nothing at all when there are none, as lxc-ls
            print("\n".join(names) if args.one else "  ".join(names))
        return 0
    columns = list(FANCY_COLUMNS)
    if args.fancy_format:
        columns = [c.strip().upper() for c in args.fancy_format.split(",")]
    known = (*FANCY_COLUMNS, "PID", "RAM")
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ConfigError(f"unknown column(s) {', '.join(unknown)} ({', '.join(known)})")
    out = [[_column(lxc, name, state, c) for c in columns] for name, state in rows]
    print(table(columns, out))
    return 0


def _column(lxc: Lxc, name: str, state: str, column: str) -> str:
    from corral.network.endpoints import endpoints_of

    if column == "NAME":
        return name
    if column == "STATE":
        return state
    try:
        config = lxc.load(name)
    except Exception:
        return "-"
    if column == "AUTOSTART":
        return "1" if config.start_auto else "0"
    if column == "GROUPS":
        return ",".join(config.groups) or "-"
    if column == "UNPRIVILEGED":
        return "true" if config.idmaps else "false"
    if column == "IPV6":
        return "-"
    if state == "STOPPED":
        return "-"
    if column == "IPV4":
        endpoints, _ = endpoints_of(lxc.data_root, lxc.cid(name))
        return ", ".join(e.ip for e in endpoints) or "-"
    info = dict(lxc.info(name))
    return info.get("PID", "-") if column == "PID" else info.get("Memory use", "-")


def cmd_info(args: argparse.Namespace) -> int:
    rows = _lxc(args).info(_name(args))
    only = {k for k, on in (("State", args.state), ("PID", args.pid), ("IP", args.ips)) if on}
    for key, value in rows:
        if not only or key in only:
            print(f"{key + ':':<16}{value}")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    _lxc(args).freeze(_name(args), args.frozen)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    if args.tty != 0:
        raise ConfigError("only the console (tty 0) exists in a Corral container")
    letter = args.escape.lower()
    if len(letter) != 1 or not "a" <= letter <= "z":
        raise ConfigError(f"invalid escape {args.escape!r}: a letter (ctrl-LETTER q detaches)")
    lxc = _lxc(args)
    name = _name(args)
    if sys.stdin.isatty():
        print(f"Connected to the console of {name}; type <Ctrl+{letter} q> to leave.",
              file=sys.stderr)  # fmt: skip
    return lxc.attach_console(lxc.cid(name), bytes([ord(letter) - 96]) + b"q")


def cmd_wait(args: argparse.Namespace) -> int:
    states = [s for s in args.state.split("|") if s]
    allowed = {"RUNNING", "STOPPED", "FROZEN", "STARTING", "STOPPING", "ABORTING", "FREEZING"}
    allowed.add("THAWED")
    bad = [s for s in states if s.upper() not in allowed]
    if bad or not states:
        raise ConfigError(f"invalid state(s) {args.state!r} ({', '.join(sorted(allowed))})")
    return 0 if _lxc(args).wait(_name(args), states, args.timeout) else 1


def cmd_copy(args: argparse.Namespace) -> int:
    if args.backingstorage not in ("", "overlay", "overlayfs", "dir"):
        raise ConfigError(f"backing storage {args.backingstorage!r}: overlay or dir")
    snapshot = args.snapshot or args.backingstorage in ("overlay", "overlayfs")
    _lxc(args).copy(_name(args), args.newname, snapshot)
    return 0


def cmd_autostart(args: argparse.Namespace) -> int:
    groups = [g for g in args.groups.split(",") if g] if not args.all else []
    for name in _lxc(args).autostart(groups, args.list):
        print(name)
    return 0
