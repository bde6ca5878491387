"""Plain-text tables and JSON output for the CLI."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def emit_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def for_each(
    names: Sequence[str], action: Callable[[str], Iterable[str]], label: bool = False
) -> int:
    """docker's pattern for verbs over several objects: act on each, print what the action
    reports, report failures on stderr and go on; exit 1 if any failed."""
    from corral.errors import CorralError

    failed = 0
    for name in names:
        try:
            for line in action(name):
                print(line)
        except CorralError as err:
            where = f"{name}: " if label else ""
            print(f"corral: error: {where}{err}", file=sys.stderr)
            failed = 1
    return failed
