"""`corral`: the command-line entry point. Each verb group lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from corral import __version__
from corral.errors import CorralError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn


# Verb -> the module that registers it; a command imports only its own module.
GROUPS: dict[str, tuple[str, ...]] = {
    "container": (
        "run", "create", "start", "stop", "restart", "kill", "rm", "ps", "exec", "logs",
        "attach", "wait", "inspect", "pause", "unpause", "top", "rename", "update", "port", "cp",
        "stats",
    ),
    "image": ("pull", "images", "rmi", "tag", "load", "save", "login", "logout", "image"),
    "volume": ("volume", "system", "info", "version"),
    "network": ("network",),
    "lxc": ("lxc",),
    "cgroup": ("cgroup",),
}  # fmt: skip
_VALUED = ("--cgroup-parent", "--data-root")


def _command_at(argv: Sequence[str]) -> int | None:
    """Where the verb is, found without argparse: only its group's parsers are built
    (building all of them costs ~20 ms, on every `corral` command)."""
    skip = False
    for i, token in enumerate(argv):
        if skip:
            skip = False
        elif token in _VALUED:
            skip = True
        elif not token.startswith("-"):
            return i
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: a Linux container engine built from the kernel up.",
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    parser.add_argument(
        "--cgroup-parent",
        metavar="PATH",
        help="where Corral puts its cgroups: relative to the cgroup Corral runs in, or an "
        "absolute cgroup path (default: $CORRAL_CGROUP_PARENT or 'corral')",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="where Corral keeps images and containers (default: $CORRAL_DATA_ROOT or "
        "/var/lib/corral)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    at = _command_at(argv) if argv is not None else None
    wanted = argv[at] if argv is not None and at is not None else None
    known = any(wanted in verbs for verbs in GROUPS.values())
    for name, verbs in GROUPS.items():
        if not known or wanted in verbs:
            module = importlib.import_module(f"corral.cli.{name}")
            if name == "lxc" and argv is not None and at is not None:
                module.register(sub, argv[at + 1 :])  # and only the verb's own parser
            else:
                module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.cgroup_parent:  # the engine's monitors and runtimes read it from there
        os.environ["CORRAL_CGROUP_PARENT"] = args.cgroup_parent
    try:
        code: int = args.func(args)
    except CorralError as err:
        print(f"corral: error: {err}", file=sys.stderr)
        failed: int = getattr(args, "error_code", 1)  # 125 for run/create/exec, as docker
        return failed
    except KeyboardInterrupt:
        return 130
    return code


def run() -> NoReturn:
    """The installed `corral` command (scripts/setup.sh's launcher): main, then out
    without the interpreter's tear-down (module clean-up: ~3 ms a command). Corral
    registers nothing that must run at exit; output is flushed first."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
