"""Parsing and printing the units users write: 64M, 1.5G, 0.5 (CPUs), max."""

from __future__ import annotations

import re

from corral.errors import CgroupInvalid

from .resources import UNLIMITED

__all__ = ["UNLIMITED"]
_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTP]?)(I?B)?$", re.IGNORECASE)


def parse_bytes(text: str, what: str = "value") -> int:
    """'64M', '64MiB', '1.5g', '4096' -> bytes; 'max', '-1', 'unlimited' -> UNLIMITED."""
    raw = text.strip()
    if raw.lower() in ("max", "-1", "unlimited"):
        return UNLIMITED
    m = _BYTES.match(raw)
    if not m:
        raise CgroupInvalid(
            f"malformed {what} {text!r}: expected a number with an optional unit "
            "(K, M, G, T; e.g. 64M) or 'max'"
        )
    number, unit, tail = m.groups()
    if unit == "" and tail and tail.upper() == "IB":
        raise CgroupInvalid(f"malformed {what} {text!r}: unit missing before 'iB'")
    return int(float(number) * _SUFFIX[unit.upper()])


def parse_int(
    text: str, what: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = text.strip()
    try:
        value = int(raw, 0)
    except ValueError:
        raise CgroupInvalid(f"malformed {what} {text!r}: expected an integer") from None
    if minimum is not None and value < minimum:
        raise CgroupInvalid(f"{what} {value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise CgroupInvalid(f"{what} {value} is above the maximum {maximum}")
    return value


def parse_limit(text: str, what: str) -> int:
    """An integer limit where 'max' / -1 mean unlimited (pids.max, cpu quota)."""
    if text.strip().lower() in ("max", "-1", "unlimited"):
        return UNLIMITED
    return parse_int(text, what, minimum=0)


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CgroupInvalid(
            f"malformed cpus {text!r}: expected a number of CPUs like 0.5"
        ) from None
    if value <= 0:
        raise CgroupInvalid(f"cpus must be positive, got {text!r}")
    return value


_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpu_list(text: str, what: str) -> str:
    """A kernel list like '0-2,4'. Returned unchanged when well formed."""
    raw = text.strip()
    if raw and not _CPU_LIST.match(raw):
        raise CgroupInvalid(f"malformed {what} {text!r}: expected a list like 0-2,4")
    return raw


def expand_cpu_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def format_bytes(value: int | None) -> str:
    """Bytes for humans: 67108864 -> '64.0MiB'; UNLIMITED (or the kernel's huge 'no limit'
    number) -> 'max'; None -> '-'."""
    if value is None:
        return "-"
    if value == UNLIMITED or value >= (1 << 62):
        return "max"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{int(size)}B" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"
