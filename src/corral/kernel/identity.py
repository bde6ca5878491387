"""Is this still the process Corral started? A pid and its start time (field 22 of
/proc/PID/stat) name one process for good. Imports nothing but the standard library's
core: the runtime's state checks and the network layer's lease checks use it on hot paths."""

from __future__ import annotations


def process_alive(pid: int, start: int) -> bool:
    """True if `pid` is still the process that started at `start` (0: any), and not a
    zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return False
    return start == 0 or int(rest[19]) == start
