"""The resource model: one set of names for every backend, and runc's conversions between
cgroup v1 and v2 values. Plain data, no I/O."""

from __future__ import annotations

from corral.errors import CgroupInvalid
from corral.structs import fields, record, replace

CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144
CPU_WEIGHT_MIN, CPU_WEIGHT_MAX = 1, 10000
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000
DEFAULT_CPU_PERIOD = 100_000
UNLIMITED = -1  # "no limit" in the model (the kernel says max, or -1)


@record(frozen=True)
class DeviceRule:
    """One devices-controller rule: allow or deny access ('rwm') to a device type/number."""

    allow: bool
    type: str = "a"  # a (all), c (char), b (block)
    major: int | None = None  # None = any ('*')
    minor: int | None = None
    access: str = "rwm"

    def v1_line(self) -> str:
        """The text devices.allow / devices.deny take: 'c 1:3 rwm', or 'a' for everything."""
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _device_number(text: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def parse_device_rule(text: str, allow: bool) -> DeviceRule:
    """'c 1:3 rwm', 'b 8:* r', 'a' -> DeviceRule."""
    words = text.split()
    try:
        if not 1 <= len(words) <= 3 or words[0] not in ("a", "b", "c"):
            raise ValueError(text)
        major = minor = None
        if len(words) >= 2:
            major_s, sep, minor_s = words[1].partition(":")
            if not sep:
                raise ValueError(text)
            major, minor = _device_number(major_s), _device_number(minor_s)
        access = words[2] if len(words) == 3 else "rwm"
        if not access or set(access) - set("rwm") or len(set(access)) != len(access):
            raise ValueError(text)
    except ValueError:
        raise CgroupInvalid(
            f"malformed device rule {text!r}: expected 'TYPE MAJOR:MINOR ACCESS' like 'c 1:3 rwm'"
        ) from None
    return DeviceRule(allow=allow, type=words[0], major=major, minor=minor, access=access)


@record(frozen=True)
class Throttle:
    """A per-device I/O limit (blkio.throttle.* on v1, io.max on v2)."""

    kind: str  # read_bps, write_bps, read_iops, write_iops
    major: int
    minor: int
    rate: int

    KINDS = ("read_bps", "write_bps", "read_iops", "write_iops")


@record(frozen=True)
class Resources:
    """What a group may use. None means 'leave as it is'; UNLIMITED (-1) means no limit.

    Field meanings follow the OCI runtime spec's LinuxResources so the runtime converts
    into this model once. cpu_weight and io_weight are the v2-native knobs; each backend
    converts whichever of the pair it is given.
    """

    memory_limit: int | None = None
    memory_reservation: int | None = None
    memory_swap: int | None = None  # memory + swap, as docker and OCI define it
    cpu_shares: int | None = None
    cpu_weight: int | None = None
    cpu_quota: int | None = None  # microseconds per period; UNLIMITED for none
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    io_weight: int | None = None
    throttles: tuple[Throttle, ...] = ()
    devices: tuple[DeviceRule, ...] = ()
    hugetlb: tuple[tuple[str, int], ...] = ()  # (page size like '2MB', limit bytes)
    net_cls_classid: int | None = None
    # Native files written as given (key -> value), after the model's own settings.
    raw: tuple[tuple[str, str], ...] = ()

    def merged(self, other: Resources) -> Resources:
        """`other`'s settings on top of this one's (tuples are concatenated)."""
        changes: dict[str, object] = {}
        for name in fields(self):
            value = getattr(other, name)
            if isinstance(value, tuple):
                if value:
                    changes[name] = getattr(self, name) + value
            elif value is not None:
                changes[name] = value
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return self == Resources()


def cpus_to_quota(cpus: float, period: int = DEFAULT_CPU_PERIOD) -> tuple[int, int]:
    """docker --cpus: 0.5 CPU = 50000us of every 100000us."""
    return round(cpus * period), period


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2..262144] -> cpu.weight [1..10000].

    The quadratic fit runc (opencontainers/cgroups >= 0.0.2) and crun use: it maps the
    minimum, the default (1024 -> 100) and the maximum onto each other, unlike the older
    linear formula that turned the default 1024 into 39.
    """
    if shares <= 0:
        raise CgroupInvalid(f"cpu shares must be positive, got {shares}")
    if shares <= CPU_SHARES_MIN:
        return CPU_WEIGHT_MIN
    if shares >= CPU_SHARES_MAX:
        return CPU_WEIGHT_MAX
    import math  # only when converting: not on the start path of a v1 host

    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return math.ceil(10**exponent)


def weight_to_shares(weight: int) -> int:
    """The inverse of shares_to_weight, for a v2-style weight given on a v1 host."""
    if not CPU_WEIGHT_MIN <= weight <= CPU_WEIGHT_MAX:
        raise CgroupInvalid(f"cpu weight {weight} is outside {CPU_WEIGHT_MIN}..{CPU_WEIGHT_MAX}")
    if weight == CPU_WEIGHT_MIN:
        return CPU_SHARES_MIN
    if weight == CPU_WEIGHT_MAX:
        return CPU_SHARES_MAX
    import math

    # Solve l^2 + 125 l - 612 (log10(w) + 7/34) = 0 for l = log2(shares).
    c = 612.0 * (math.log10(weight) + 7.0 / 34.0)
    log = (-125.0 + math.sqrt(125.0 * 125.0 + 4.0 * c)) / 2.0
    shares = round(2**log)
    # Rounding can land one step off; take the smallest shares that maps back to `weight`.
    while shares > CPU_SHARES_MIN and shares_to_weight(shares - 1) >= weight:
        shares -= 1
    while shares_to_weight(shares) < weight:
        shares += 1
    return shares


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10..1000] -> io.weight [1..10000], runc's linear conversion."""
    if not BLKIO_WEIGHT_MIN <= weight <= BLKIO_WEIGHT_MAX:
        raise CgroupInvalid(
            f"blkio weight {weight} is outside {BLKIO_WEIGHT_MIN}..{BLKIO_WEIGHT_MAX}"
        )
    return 1 + (weight - 10) * 9999 // 990


def io_weight_to_blkio_weight(weight: int) -> int:
    if not CPU_WEIGHT_MIN <= weight <= CPU_WEIGHT_MAX:
        raise CgroupInvalid(f"io weight {weight} is outside 1..10000")
    return 10 + ((weight - 1) * 990 + 9998) // 9999


def swap_for_v2(memory_swap: int, memory_limit: int | None) -> int:
    """OCI memory.swap (memory + swap) -> cgroup v2 memory.swap.max (swap alone).

    runc's rules: unlimited stays unlimited; otherwise a memory limit is required and the
    total may not be below it.
    """
    if memory_swap == UNLIMITED:
        return UNLIMITED
    if memory_limit is None or memory_limit == UNLIMITED:
        raise CgroupInvalid("a memory+swap limit needs a memory limit on cgroup v2")
    if memory_swap < memory_limit:
        raise CgroupInvalid(
            f"memory+swap limit {memory_swap} is below the memory limit {memory_limit}"
        )
    return memory_swap - memory_limit
