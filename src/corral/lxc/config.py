"""LXC's container configuration: `key = value` lines, `#` comments, lxc.include.

The keys Corral applies are listed in KEYS (and the indexed lxc.net.N.*, lxc.cgroup.*,
lxc.cgroup2.* families). A key LXC has but Corral does not apply is an error that says so,
as is a key nobody has or a malformed value: each names the file and line. An empty value
clears a list key, as in LXC.
"""

from __future__ import annotations

import os
import re

from corral.errors import ConfigError
from corral.structs import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The default halt and stop signals as numbers (Linux on x86 and arm): importing the
# signal module for them would cost every `corral lxc` command a millisecond.
SIGPWR, SIGKILL = 30, 9


@record
class LxcConfig:
    uts_name: str = ""
    rootfs: str = ""  # "dir:/path", "/path" or "overlay:/lower:/upper"
    cgroup: list[tuple[str, str]] = field(default_factory=list)  # (file name, value)
    nets: dict[int, dict[str, str]] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)  # fstab-style lxc.mount.entry lines
    mount_auto: list[str] = field(default_factory=list)
    init_cmd: list[str] = field(default_factory=list)
    init_cwd: str = ""
    init_uid: int | None = None
    init_gid: int | None = None
    environment: list[str] = field(default_factory=list)
    idmaps: list[tuple[str, int, int, int]] = field(default_factory=list)  # u|g, ct, host, n
    start_auto: bool = False
    start_delay: int = 0
    start_order: int = 0
    groups: list[str] = field(default_factory=list)
    signal_halt: int = SIGPWR
    signal_stop: int = SIGKILL
    cap_drop: list[str] = field(default_factory=list)
    cap_keep: list[str] = field(default_factory=list)
    pty_max: int = 0


NET_KEYS = ("type", "link", "flags", "name", "hwaddr", "mtu", "ipv4.address", "ipv4.gateway")
NET_TYPES = ("veth", "empty", "none")
MOUNT_AUTO = {
    "proc:mixed", "proc:rw", "sys:mixed", "sys:ro", "sys:rw", "cgroup:mixed", "cgroup:ro",
    "cgroup:rw", "cgroup", "proc", "sys",
}  # fmt: skip
ARCHES = {"x86_64", "amd64", "linux64"}
# Keys LXC has that Corral does not apply: refused by name rather than silently ignored.
NOT_APPLIED = (
    "lxc.hook.", "lxc.seccomp.", "lxc.apparmor.", "lxc.selinux.", "lxc.console.", "lxc.log.",
    "lxc.tty.", "lxc.prlimit.", "lxc.sysctl.", "lxc.proc.", "lxc.namespace.", "lxc.monitor.",
    "lxc.rootfs.options", "lxc.rootfs.mount", "lxc.mount.fstab", "lxc.ephemeral",
    "lxc.no_new_privs", "lxc.keyring.", "lxc.time.", "lxc.hook", "lxc.autodev.tmpfs.size",
    "lxc.cgroup.dir", "lxc.cgroup.relative", "lxc.signal.reboot", "lxc.init.groups",
)  # fmt: skip


def _signal(value: str, where: str) -> int:
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        import signal

        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise ConfigError(f"{where}: unknown signal {value!r}") from None
    if not 1 <= number <= 64:
        raise ConfigError(f"{where}: signal {value!r} out of range")
    return number


def _int(value: str, where: str, lo: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if number < lo:
        raise ConfigError(f"{where}: {number} is below {lo}")
    return number


def _bool(value: str, where: str) -> bool:
    if value not in ("0", "1"):
        raise ConfigError(f"{where}: expected 0 or 1, got {value!r}")
    return value == "1"


def _net(config: LxcConfig, key: str, value: str, where: str) -> None:
    m = re.match(r"^lxc\.net\.(\d+)\.(.+)$", key)
    if not m:
        raise ConfigError(f"{where}: malformed network key {key!r} (lxc.net.N.KEY)")
    index, sub = int(m[1]), m[2]
    if sub not in NET_KEYS:
        raise ConfigError(f"{where}: lxc.net.{index}.{sub} is not a network key Corral applies "
                          f"({', '.join(NET_KEYS)})")  # fmt: skip
    if sub == "type" and value not in NET_TYPES:
        raise ConfigError(f"{where}: network type {value!r}: Corral has {', '.join(NET_TYPES)}")
    if sub == "ipv4.address":
        import ipaddress

        try:
            iface = ipaddress.ip_interface(value.split()[0] if value else "")
        except ValueError:
            raise ConfigError(f"{where}: invalid IPv4 address {value!r} (a.b.c.d/len)") from None
        if iface.version != 4 or "/" not in value:
            raise ConfigError(f"{where}: invalid IPv4 address {value!r} (a.b.c.d/len)")
    if sub == "mtu":
        _int(value, where, 68)
    if sub == "hwaddr" and not re.match(r"^([0-9a-fA-Fx]{2}:){5}[0-9a-fA-Fx]{2}$", value):
        raise ConfigError(f"{where}: invalid MAC address {value!r}")
    if sub == "name" and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", value):
        raise ConfigError(f"{where}: invalid interface name {value!r}")
    if sub == "ipv4.gateway" and value != "auto":
        import ipaddress

        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ConfigError(f"{where}: invalid gateway {value!r} (auto or an address)") from None
    if sub == "flags" and value not in ("up", ""):
        raise ConfigError(f"{where}: network flags {value!r}: only 'up'")
    config.nets.setdefault(index, {})[sub] = value


def _idmap(value: str, where: str) -> tuple[str, int, int, int]:
    parts = value.split()
    if len(parts) != 4 or parts[0] not in ("u", "g", "b"):
        raise ConfigError(
            f"{where}: lxc.idmap is 'u|g|b CONTAINER_ID HOST_ID COUNT', got {value!r}"
        )
    return parts[0], _int(parts[1], where), _int(parts[2], where), _int(parts[3], where, 1)


def apply_line(config: LxcConfig, key: str, value: str, where: str) -> None:
    """One `key = value` into `config`; `where` is "file:line" for errors."""
    lists = {
        "lxc.mount.entry": "mounts", "lxc.environment": "environment", "lxc.cap.drop": None,
        "lxc.cap.keep": None, "lxc.idmap": "idmaps", "lxc.group": None, "lxc.mount.auto": None,
    }  # fmt: skip
    if key in lists and value == "":
        attr = {"lxc.cap.drop": "cap_drop", "lxc.cap.keep": "cap_keep", "lxc.group": "groups",
                "lxc.mount.auto": "mount_auto"}.get(key) or lists[key]  # fmt: skip
        setattr(config, str(attr), [])
        return
    if key == "lxc.uts.name":
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$", value):
            raise ConfigError(f"{where}: invalid host name {value!r}")
        config.uts_name = value
    elif key == "lxc.rootfs.path":
        config.rootfs = value
    elif key.startswith("lxc.cgroup2."):
        config.cgroup.append((key[len("lxc.cgroup2.") :], value))
    elif key.startswith("lxc.cgroup."):
        config.cgroup.append((key[len("lxc.cgroup.") :], value))
    elif key == "lxc.net":
        if value:
            raise ConfigError(f"{where}: lxc.net takes no value (it clears the networks)")
        config.nets = {}
    elif key.startswith("lxc.net."):
        _net(config, key, value, where)
    elif key == "lxc.mount.entry":
        if len(value.split()) < 4:
            raise ConfigError(f"{where}: lxc.mount.entry needs 'SOURCE TARGET TYPE OPTIONS'")
        config.mounts.append(value)
    elif key == "lxc.mount.auto":
        for item in value.split():
            if item not in MOUNT_AUTO:
                raise ConfigError(f"{where}: lxc.mount.auto value {item!r} is not supported")
            config.mount_auto.append(item)
    elif key == "lxc.init.cmd":
        import shlex

        config.init_cmd = shlex.split(value)
    elif key == "lxc.init.cwd":
        config.init_cwd = value
    elif key == "lxc.init.uid":
        config.init_uid = _int(value, where)
    elif key == "lxc.init.gid":
        config.init_gid = _int(value, where)
    elif key == "lxc.environment":
        if "=" not in value:
            value = f"{value}={os.environ.get(value, '')}"  # LXC: taken from the caller
        config.environment.append(value)
    elif key == "lxc.idmap":
        config.idmaps.append(_idmap(value, where))
    elif key == "lxc.start.auto":
        config.start_auto = _bool(value, where)
    elif key == "lxc.start.delay":
        config.start_delay = _int(value, where)
    elif key == "lxc.start.order":
        config.start_order = _int(value, where, -(2**31))
    elif key == "lxc.group":
        config.groups += value.replace(",", " ").split()
    elif key == "lxc.signal.halt":
        config.signal_halt = _signal(value, where)
    elif key == "lxc.signal.stop":
        config.signal_stop = _signal(value, where)
    elif key == "lxc.cap.drop":
        config.cap_drop += value.split()
    elif key == "lxc.cap.keep":
        config.cap_keep += value.split()
    elif key == "lxc.pty.max":
        config.pty_max = _int(value, where)
    elif key == "lxc.arch":
        if value not in ARCHES:
            raise ConfigError(f"{where}: lxc.arch {value!r}: this host runs x86_64")
    elif key == "lxc.autodev":
        if value != "1":
            raise ConfigError(f"{where}: lxc.autodev = {value}: Corral always makes /dev")
    elif key.startswith(NOT_APPLIED):
        raise ConfigError(f"{where}: {key} is an LXC key Corral does not apply")
    else:
        raise ConfigError(f"{where}: unknown key {key!r}")


def parse(text: str, origin: str, config: LxcConfig | None = None, depth: int = 0) -> LxcConfig:
    """Parse a config's text; `origin` names it in errors."""
    config = config if config is not None else LxcConfig()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{origin}:{number}"
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: expected 'key = value', got {raw.strip()!r}")
        if not key.startswith("lxc."):
            raise ConfigError(f"{where}: unknown key {key!r} (LXC keys start with 'lxc.')")
        if key == "lxc.include":
            if depth > 8:
                raise ConfigError(f"{where}: lxc.include nested too deep")
            load(value, config, depth + 1)
            continue
        apply_line(config, key, value, where)
    return config


def load(path: str, config: LxcConfig | None = None, depth: int = 0) -> LxcConfig:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    return parse(text, path, config, depth)


def render(entries: list[tuple[str, Any]]) -> str:
    """Config text from (key, value) pairs, as templates write it."""
    return "".join(f"{key} = {value}\n" for key, value in entries)
