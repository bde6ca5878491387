"""`key=value` parameters as users type them, turned into the resource model.

Three spellings are accepted everywhere (`corral cgroup create/set/get/exec`):
  * the model's names with units: memory=64M, cpus=0.5, pids=20, cpuset-cpus=0-1, ...
  * the kernel's file names of either cgroup version: memory.limit_in_bytes, cpu.shares
    (v1) or memory.max, cpu.weight (v2); a name from the other version is translated for
    the host, a value in the other version's scale converted (shares <-> weight).
  * any other file of the host's own version (memory.swappiness, memory.high, ...), passed
    through unchanged; the backend refuses it if the group has no such file.
Pure functions: no I/O, unit-tested.
"""

from __future__ import annotations

import re

from corral.errors import CgroupInvalid

from .resources import (
    DeviceRule,
    Resources,
    Throttle,
    cpus_to_quota,
    parse_device_rule,
)
from .units import UNLIMITED, parse_bytes, parse_cpu_list, parse_cpus, parse_int, parse_limit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

if TYPE_CHECKING:
    Parser = Callable[[str], Resources]


def _bytes_field(name: str, what: str) -> Parser:
    return lambda v: Resources(**{name: parse_bytes(v, what)})  # type: ignore[arg-type]


def _cpus(value: str) -> Resources:
    quota, period = cpus_to_quota(parse_cpus(value))
    return Resources(cpu_quota=quota, cpu_period=period)


def _cpu_max(value: str) -> Resources:
    parts = value.split()
    if not 1 <= len(parts) <= 2:
        raise CgroupInvalid(f"malformed cpu.max {value!r}: expected 'QUOTA [PERIOD]' or 'max'")
    quota = parse_limit(parts[0], "cpu quota")
    period = parse_int(parts[1], "cpu period", minimum=1000) if len(parts) == 2 else None
    return Resources(cpu_quota=quota, cpu_period=period)


_THROTTLE = re.compile(r"^(\d+):(\d+)[\s:=]+(\S+)$")


def _throttle(kind: str) -> Parser:
    def parse(value: str) -> Resources:
        m = _THROTTLE.match(value.strip())
        if not m:
            raise CgroupInvalid(
                f"malformed {kind} throttle {value!r}: expected 'MAJOR:MINOR RATE' like '8:0 1M'"
            )
        major, minor, rate = m.groups()
        amount = (
            parse_bytes(rate, f"{kind} rate")
            if kind.endswith("bps")
            else parse_limit(rate, f"{kind} rate")
        )
        return Resources(throttles=(Throttle(kind, int(major), int(minor), amount),))

    return parse


def _io_max(value: str) -> Resources:
    """v2 io.max: '8:0 rbps=1048576 wiops=100'."""
    words = value.split()
    m = re.match(r"^(\d+):(\d+)$", words[0]) if words else None
    if not m or len(words) < 2:
        raise CgroupInvalid(f"malformed io.max {value!r}: expected 'MAJ:MIN rbps=N ...'")
    names = {"rbps": "read_bps", "wbps": "write_bps", "riops": "read_iops", "wiops": "write_iops"}
    out = []
    for word in words[1:]:
        key, _, rate = word.partition("=")
        if key not in names:
            raise CgroupInvalid(f"malformed io.max {value!r}: unknown key {key!r}")
        out.append(Throttle(names[key], int(m[1]), int(m[2]), parse_limit(rate, f"io.max {key}")))
    return Resources(throttles=tuple(out))


def _io_weight(value: str) -> Resources:
    """v2 io.weight: 'N' or 'default N'."""
    text = value.strip().removeprefix("default").strip()
    return Resources(io_weight=parse_int(text, "io weight", minimum=1, maximum=10000))


def _devices(allow: bool) -> Parser:
    def parse(value: str) -> Resources:
        rule: DeviceRule = parse_device_rule(value, allow)
        return Resources(devices=(rule,))

    return parse


def _int_field(name: str, what: str, lo: int, hi: int | None = None) -> Parser:
    return lambda v: Resources(**{name: parse_int(v, what, minimum=lo, maximum=hi)})  # type: ignore[arg-type]


def _limit_field(name: str, what: str) -> Parser:
    return lambda v: Resources(**{name: parse_limit(v, what)})  # type: ignore[arg-type]


def _cpuset(name: str, what: str) -> Parser:
    return lambda v: Resources(**{name: parse_cpu_list(v, what)})  # type: ignore[arg-type]


# The model's own names (what `corral cgroup` documents), with units.
MODEL: dict[str, Parser] = {
    "memory": _bytes_field("memory_limit", "memory limit"),
    "memory-reservation": _bytes_field("memory_reservation", "memory reservation"),
    "memory-swap": _bytes_field("memory_swap", "memory+swap limit"),
    "cpus": _cpus,
    "cpu-shares": _int_field("cpu_shares", "cpu shares", 2, 262144),
    "cpu-weight": _int_field("cpu_weight", "cpu weight", 1, 10000),
    "cpu-quota": _limit_field("cpu_quota", "cpu quota"),
    "cpu-period": _int_field("cpu_period", "cpu period", 1000, 1_000_000),
    "cpuset-cpus": _cpuset("cpuset_cpus", "cpuset cpus"),
    "cpuset-mems": _cpuset("cpuset_mems", "cpuset mems"),
    "pids": _limit_field("pids_limit", "pids limit"),
    "blkio-weight": _int_field("blkio_weight", "blkio weight", 10, 1000),
    "io-weight": _int_field("io_weight", "io weight", 1, 10000),
    "device-read-bps": _throttle("read_bps"),
    "device-write-bps": _throttle("write_bps"),
    "device-read-iops": _throttle("read_iops"),
    "device-write-iops": _throttle("write_iops"),
    "device-allow": _devices(True),
    "device-deny": _devices(False),
    "net-cls-classid": _int_field("net_cls_classid", "net_cls classid", 0),
}

# Kernel file names of both versions that the model understands.
KERNEL: dict[str, Parser] = {
    "memory.limit_in_bytes": MODEL["memory"],
    "memory.max": MODEL["memory"],
    "memory.soft_limit_in_bytes": MODEL["memory-reservation"],
    "memory.low": MODEL["memory-reservation"],
    "memory.memsw.limit_in_bytes": MODEL["memory-swap"],
    "cpu.shares": MODEL["cpu-shares"],
    "cpu.weight": MODEL["cpu-weight"],
    "cpu.cfs_quota_us": MODEL["cpu-quota"],
    "cpu.cfs_period_us": MODEL["cpu-period"],
    "cpu.max": _cpu_max,
    "cpuset.cpus": MODEL["cpuset-cpus"],
    "cpuset.mems": MODEL["cpuset-mems"],
    "pids.max": MODEL["pids"],
    "blkio.weight": MODEL["blkio-weight"],
    "io.weight": _io_weight,
    "blkio.throttle.read_bps_device": MODEL["device-read-bps"],
    "blkio.throttle.write_bps_device": MODEL["device-write-bps"],
    "blkio.throttle.read_iops_device": MODEL["device-read-iops"],
    "blkio.throttle.write_iops_device": MODEL["device-write-iops"],
    "io.max": _io_max,
    "devices.allow": MODEL["device-allow"],
    "devices.deny": MODEL["device-deny"],
    "net_cls.classid": MODEL["net-cls-classid"],
}

_HUGETLB = re.compile(r"^hugetlb[.-](\d+[KMG]B)(?:\.limit_in_bytes|\.max)?$")


def parse_param(key: str, value: str, version: int) -> Resources:
    """One `key=value` -> Resources for a host of cgroup `version` (1 or 2)."""
    key = key.strip()
    if key in MODEL:
        return MODEL[key](value)
    if key in KERNEL:
        return KERNEL[key](value)
    if key == "memory.swap.max":
        if version == 1:
            raise CgroupInvalid(
                "memory.swap.max is swap alone; give memory-swap=TOTAL (memory + swap) instead, "
                "which Corral translates for v1 and v2"
            )
        return Resources(raw=((key, value),))
    m = _HUGETLB.match(key)
    if m:
        return Resources(hugetlb=((m[1], parse_bytes(value, f"{key} limit")),))
    if "." in key and re.match(r"^[a-z_]+\.[a-z0-9_.]+$", key):
        return Resources(raw=((key, value),))
    known = ", ".join(MODEL)
    raise CgroupInvalid(f"unknown parameter {key!r} (model names: {known}; or a cgroup file name)")


def split_assignment(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise CgroupInvalid(f"malformed parameter {item!r}: expected KEY=VALUE")
    return key.strip(), value


def parse_params(items: Iterable[str], version: int) -> Resources:
    """['memory=64M', 'cpu.shares=512'] -> one Resources (later items win)."""
    out = Resources()
    for item in items:
        key, value = split_assignment(item)
        out = out.merged(parse_param(key, value, version))
    return out


# For `get`: a name in any spelling -> the files that hold it on a host of each version.
_V1_FOR: dict[str, tuple[str, ...]] = {
    "memory": ("memory.limit_in_bytes",),
    "memory.max": ("memory.limit_in_bytes",),
    "memory-reservation": ("memory.soft_limit_in_bytes",),
    "memory.low": ("memory.soft_limit_in_bytes",),
    "memory-swap": ("memory.memsw.limit_in_bytes",),
    "memory.swap.max": ("memory.memsw.limit_in_bytes",),
    "memory.current": ("memory.usage_in_bytes",),
    "memory.peak": ("memory.max_usage_in_bytes",),
    "cpus": ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "cpu.max": ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "cpu-shares": ("cpu.shares",),
    "cpu-weight": ("cpu.shares",),
    "cpu.weight": ("cpu.shares",),
    "cpu-quota": ("cpu.cfs_quota_us",),
    "cpu-period": ("cpu.cfs_period_us",),
    "cpuset-cpus": ("cpuset.cpus",),
    "cpuset-mems": ("cpuset.mems",),
    "pids": ("pids.max",),
    "blkio-weight": ("blkio.weight",),
    "io-weight": ("blkio.weight",),
    "io.weight": ("blkio.weight",),
    "cgroup.freeze": ("freezer.state",),
    "net-cls-classid": ("net_cls.classid",),
}
_V2_FOR: dict[str, tuple[str, ...]] = {
    "memory": ("memory.max",),
    "memory.limit_in_bytes": ("memory.max",),
    "memory-reservation": ("memory.low",),
    "memory.soft_limit_in_bytes": ("memory.low",),
    "memory-swap": ("memory.swap.max",),
    "memory.memsw.limit_in_bytes": ("memory.swap.max",),
    "memory.usage_in_bytes": ("memory.current",),
    "memory.max_usage_in_bytes": ("memory.peak",),
    "cpus": ("cpu.max",),
    "cpu-quota": ("cpu.max",),
    "cpu-period": ("cpu.max",),
    "cpu.cfs_quota_us": ("cpu.max",),
    "cpu.cfs_period_us": ("cpu.max",),
    "cpu-shares": ("cpu.weight",),
    "cpu.shares": ("cpu.weight",),
    "cpu-weight": ("cpu.weight",),
    "cpuset-cpus": ("cpuset.cpus",),
    "cpuset-mems": ("cpuset.mems",),
    "pids": ("pids.max",),
    "blkio-weight": ("io.weight",),
    "blkio.weight": ("io.weight",),
    "io-weight": ("io.weight",),
    "freezer.state": ("cgroup.freeze",),
}


def files_for(key: str, version: int) -> tuple[str, ...]:
    """The host's file names that hold `key` (any spelling)."""
    table = _V1_FOR if version == 1 else _V2_FOR
    if key in table:
        return table[key]
    m = _HUGETLB.match(key)
    if m:
        return (f"hugetlb.{m[1]}.limit_in_bytes" if version == 1 else f"hugetlb.{m[1]}.max",)
    if key in MODEL:
        raise CgroupInvalid(f"{key!r} has no single file to read on cgroup v{version}")
    return (key,)


def model_names() -> list[str]:
    return list(MODEL)


__all__ = ["KERNEL", "MODEL", "UNLIMITED", "files_for", "parse_param", "parse_params"]
