"""Helpers the benchmarks share."""

from __future__ import annotations

from pathlib import Path


def smaps(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in kB, from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss
