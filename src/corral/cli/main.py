"""`corral`: the command-line entry point. Each verb group lives in its own module."""

from __future__ import annotations

import argparse
import sys

from corral import __version__
from corral.errors import CorralError

from . import cgroup, container, image, volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
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
    container.register(sub)
    image.register(sub)
    volume.register(sub)
    cgroup.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CorralError as err:
        print(f"corral: error: {err}", file=sys.stderr)
        failed: int = getattr(args, "error_code", 1)  # 125 for run/create/exec, as docker
        return failed
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
