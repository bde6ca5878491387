"""The one conversion point: a bundle's config.json (OCI runtime-spec) -> ContainerConfig.

Everything the runtime does afterwards reads ContainerConfig, never the raw JSON. Invalid
input is refused here with the JSON path of the offending field, before anything exists.
"""

from __future__ import annotations

import os

from corral import fastjson
from corral.cgroups.resources import UNLIMITED, DeviceRule, Resources, Throttle
from corral.errors import ConfigError
from corral.kernel.caps import cap_mask
from corral.kernel.mount import (
    MS_BIND,
    parse_mount_options,
)
from corral.kernel.namespaces import NAMESPACE_FLAGS
from corral.kernel.rlimit import rlimit_number
from corral.structs import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# mount_setattr attributes for the recursive ("r"-prefixed) options runc accepts.
RECURSIVE_ATTRS: dict[str, tuple[int, int]] = {
    "rro": (0x1, 0),
    "rrw": (0, 0x1),
    "rnosuid": (0x2, 0),
    "rsuid": (0, 0x2),
    "rnodev": (0x4, 0),
    "rdev": (0, 0x4),
    "rnoexec": (0x8, 0),
    "rexec": (0, 0x8),
    "rnoatime": (0x10, 0x70),
    "ratime": (0, 0x70),
    "rrelatime": (0, 0x70),
    "rstrictatime": (0x20, 0x70),
    "rnodiratime": (0x80, 0),
    "rdiratime": (0, 0x80),
    "rnosymfollow": (0x200000, 0),
    "rsymfollow": (0, 0x200000),
}
# Options that only make sense to the caller (docker, podman) and that runc ignores too.
IGNORED_OPTIONS = {"tmpcopyup", "copy-symlink", "z", "Z", "U", "notmpcopyup"}
UNSUPPORTED_OPTIONS = {"idmap", "ridmap"}  # idmapped mounts: not yet


@record(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@record(frozen=True)
class Capabilities:
    """Bit masks of the five sets."""

    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0


@record(frozen=True)
class Rlimit:
    name: str
    resource: int
    soft: int
    hard: int


@record(frozen=True)
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = User()
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (rows, columns)
    capabilities: Capabilities | None = None  # None: keep what the runtime has
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""


@record(frozen=True)
class Mount:
    destination: str
    type: str
    source: str
    flags: int  # mount(2) flags
    propagation: int  # MS_SHARED/... (| MS_REC)
    data: str
    setattr_set: int = 0  # recursive attributes via mount_setattr(AT_RECURSIVE)
    setattr_clear: int = 0

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


@record(frozen=True)
class Namespace:
    type: str  # OCI name: pid, network, mount, ipc, uts, user, cgroup, time
    path: str | None = None


@record(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@record(frozen=True)
class Device:
    path: str
    type: str  # c, b, u, p
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


@record(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: int | None


@record(frozen=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@record(frozen=True)
class ContainerConfig:
    bundle: str
    oci_version: str
    root: str  # absolute host path of the rootfs
    root_readonly: bool
    process: Process | None
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    namespaces: tuple[Namespace, ...]
    uid_mappings: tuple[IdMapping, ...]
    gid_mappings: tuple[IdMapping, ...]
    devices: tuple[Device, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    sysctl: dict[str, str]
    rootfs_propagation: int
    cgroups_path: str
    resources: Resources
    seccomp: dict[str, Any] | None
    hooks: Hooks
    personality: str | None
    time_offsets: dict[str, tuple[int, int]]
    annotations: dict[str, str] = field(default_factory=dict)
    mount_label: str = ""

    def namespace(self, kind: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.type == kind), None)

    def new_namespace(self, kind: str) -> bool:
        ns = self.namespace(kind)
        return ns is not None and ns.path is None


# -- loading -------------------------------------------------------------------------------


def load_bundle(bundle: str) -> tuple[dict[str, Any], str]:
    """Read BUNDLE/config.json; errors name the file and, for bad JSON, line and column."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if not os.path.isdir(bundle):
            raise ConfigError(f"bundle `{bundle}` does not exist") from None
        raise ConfigError(f"bundle `{bundle}` has no config.json") from None
    except OSError as err:
        raise ConfigError(f"cannot read `{path}`: {err.strerror}") from err
    try:
        spec = fastjson.loads(raw)
    except UnicodeDecodeError as err:
        raise ConfigError(f"`{path}` is not valid UTF-8: {err}") from None
    except ValueError as err:  # json.JSONDecodeError carries msg, lineno and colno
        msg, line, col = (
            getattr(err, "msg", err),
            getattr(err, "lineno", "?"),
            getattr(err, "colno", "?"),
        )
        raise ConfigError(
            f"`{path}` is not valid JSON: {msg} at line {line}, column {col}"
        ) from None
    if not isinstance(spec, dict):
        raise ConfigError(f"`{path}` must hold a JSON object")
    return spec, bundle


def load_config(bundle: str) -> ContainerConfig:
    spec, bundle = load_bundle(bundle)
    return convert(spec, bundle)


# -- helpers that check types and name the field ---------------------------------------------


class _Reader:
    def __init__(self, data: Any, path: str) -> None:
        self.data = data
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        where = f"{self.path}.{key}" if self.path else key
        return ConfigError(f"config.json: {where}: {message}")

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        if not isinstance(self.data, dict) or key not in self.data or self.data[key] is None:
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, (int, float)):
            raise self.fail(key, f"expected {what}, got {fastjson.dumps(value)}")
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {what}, got {fastjson.dumps(value)[:60]}")
        return value

    def text(self, key: str, default: str | None = None) -> Any:
        return self._get(key, str, default, "a string")

    def integer(self, key: str, default: int | None = None) -> Any:
        return self._get(key, int, default, "an integer")

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, bool, default, "true or false"))

    def array(self, key: str) -> list[Any]:
        return list(self._get(key, list, [], "a list"))

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.array(key)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(
                    f"{key}[{i}]", f"expected a string, got {fastjson.dumps(item)[:60]}"
                )
        return tuple(items)

    def obj(self, key: str) -> _Reader:
        value = self._get(key, dict, {}, "an object")
        return _Reader(value, f"{self.path}.{key}" if self.path else key)

    def has(self, key: str) -> bool:
        return isinstance(self.data, dict) and self.data.get(key) is not None

    def items(self, key: str) -> list[_Reader]:
        return [
            _Reader(v, f"{self.path}.{key}[{i}]" if self.path else f"{key}[{i}]")
            for i, v in enumerate(self.array(key))
        ]

    def check_object(self) -> None:
        if not isinstance(self.data, dict):
            raise ConfigError(f"config.json: {self.path}: expected an object")


def _abs_in_container(r: _Reader, key: str, value: str) -> str:
    if not value.startswith("/"):
        raise r.fail(key, f"{value!r} must be an absolute path inside the container")
    return value


# -- conversion ------------------------------------------------------------------------------


def convert(spec: dict[str, Any], bundle: str) -> ContainerConfig:
    top = _Reader(spec, "")
    version = top.text("ociVersion")
    if version is None:
        raise top.fail("ociVersion", "missing")
    if not version.startswith("1."):
        raise top.fail("ociVersion", f"unsupported runtime-spec version {version!r} (want 1.x)")
    root = top.obj("root")
    root_path = root.text("path")
    if not root_path:
        raise top.fail("root.path", "missing")
    root_abs = root_path if os.path.isabs(root_path) else os.path.join(bundle, root_path)
    root_abs = os.path.normpath(root_abs)
    if not os.path.isdir(root_abs):
        raise top.fail("root.path", f"rootfs `{root_abs}` does not exist or is not a directory")
    linux = top.obj("linux")
    namespaces = _namespaces(linux)
    process = _process(top.obj("process")) if top.has("process") else None
    if linux.has("intelRdt"):
        raise linux.fail("intelRdt", "Intel RDT (resctrl) is not supported by Corral")
    if linux.text("mountLabel") and not os.path.isdir("/sys/fs/selinux"):
        raise linux.fail("mountLabel", "a mount label needs SELinux, which is not enabled here")
    hostname = top.text("hostname")
    if hostname and not any(ns.type == "uts" for ns in namespaces):
        raise top.fail("hostname", "setting a hostname needs a new uts namespace")
    return ContainerConfig(
        bundle=bundle,
        oci_version=version,
        root=root_abs,
        root_readonly=root.flag("readonly"),
        process=process,
        hostname=hostname,
        domainname=top.text("domainname"),
        mounts=tuple(_mount(m) for m in top.items("mounts")),
        namespaces=namespaces,
        uid_mappings=_idmaps(linux, "uidMappings"),
        gid_mappings=_idmaps(linux, "gidMappings"),
        devices=tuple(_device(d) for d in linux.items("devices")),
        masked_paths=linux.texts("maskedPaths"),
        readonly_paths=linux.texts("readonlyPaths"),
        sysctl=_str_map(linux, "sysctl"),
        rootfs_propagation=_propagation(linux),
        cgroups_path=linux.text("cgroupsPath", "") or "",
        resources=_resources(linux.obj("resources"), linux.items("devices")),
        seccomp=linux.data.get("seccomp") if isinstance(linux.data, dict) else None,
        hooks=_hooks(top.obj("hooks")),
        personality=_personality(linux),
        time_offsets=_time_offsets(linux),
        annotations=_str_map(top, "annotations"),
        mount_label=linux.text("mountLabel", "") or "",
    )


def _str_map(r: _Reader, key: str) -> dict[str, str]:
    data = r._get(key, dict, {}, "an object of strings")
    for k, v in data.items():
        if not isinstance(v, str):
            raise r.fail(f"{key}.{k}", f"expected a string, got {fastjson.dumps(v)[:60]}")
    return dict(data)


def _namespaces(linux: _Reader) -> tuple[Namespace, ...]:
    out: list[Namespace] = []
    seen: set[str] = set()
    for item in linux.items("namespaces"):
        item.check_object()
        kind = item.text("type")
        if kind not in NAMESPACE_FLAGS:
            raise item.fail(
                "type", f"unknown namespace type {kind!r} (known: {', '.join(NAMESPACE_FLAGS)})"
            )
        if kind in seen:
            raise item.fail("type", f"namespace {kind!r} is listed twice")
        seen.add(kind)
        path = item.text("path") or None
        if path is not None and not os.path.exists(path):
            raise item.fail("path", f"namespace path `{path}` does not exist")
        out.append(Namespace(kind, path))
    return tuple(out)


def _process(p: _Reader) -> Process:
    args = p.texts("args")
    if not args:
        raise p.fail("args", "must name the program to run")
    cwd = p.text("cwd", "/")
    _abs_in_container(p, "cwd", cwd)
    user = p.obj("user")
    umask = user.integer("umask")
    caps = None
    if p.has("capabilities"):
        c = p.obj("capabilities")
        try:
            caps = Capabilities(
                bounding=cap_mask(c.texts("bounding")),
                effective=cap_mask(c.texts("effective")),
                permitted=cap_mask(c.texts("permitted")),
                inheritable=cap_mask(c.texts("inheritable")),
                ambient=cap_mask(c.texts("ambient")),
            )
        except ValueError as err:
            raise p.fail("capabilities", str(err)) from None
    rlimits = []
    for item in p.items("rlimits"):
        name = item.text("type", "")
        try:
            number = rlimit_number(name)
        except ValueError as err:
            raise item.fail("type", str(err)) from None
        soft, hard = item.integer("soft", 0), item.integer("hard", 0)
        rlimits.append(Rlimit(name, number, _rlim(soft), _rlim(hard)))
    size = p.obj("consoleSize")
    console = (
        (size.integer("height", 0), size.integer("width", 0)) if p.has("consoleSize") else None
    )
    for i, entry in enumerate(p.texts("env")):
        if "=" not in entry:
            raise p.fail(f"env[{i}]", f"{entry!r} is not NAME=VALUE")
    return Process(
        args=args,
        env=p.texts("env"),
        cwd=cwd,
        user=User(
            uid=user.integer("uid", 0),
            gid=user.integer("gid", 0),
            umask=umask,
            additional_gids=tuple(user.array("additionalGids")),
        ),
        terminal=p.flag("terminal"),
        console_size=console,
        capabilities=caps,
        rlimits=tuple(rlimits),
        no_new_privileges=p.flag("noNewPrivileges"),
        oom_score_adj=p.integer("oomScoreAdj"),
        apparmor_profile=p.text("apparmorProfile", "") or "",
        selinux_label=p.text("selinuxLabel", "") or "",
    )


def _rlim(value: int) -> int:
    # The spec uses uint64; 2^64-1 means unlimited, which Python's resource module spells -1.
    return -1 if value >= (1 << 63) or value < 0 else value


def _mount(m: _Reader) -> Mount:
    m.check_object()
    dest = m.text("destination", "")
    if not dest:
        raise m.fail("destination", "missing")
    _abs_in_container(m, "destination", dest)
    options = m.texts("options")
    setattr_set = setattr_clear = 0
    plain: list[str] = []
    for opt in options:
        if opt in UNSUPPORTED_OPTIONS or opt.startswith(("idmap=", "ridmap=")):
            raise m.fail("options", f"{opt!r}: idmapped mounts are not supported by Corral yet")
        if opt in RECURSIVE_ATTRS:
            s, c = RECURSIVE_ATTRS[opt]
            setattr_set, setattr_clear = (setattr_set | s) & ~c, setattr_clear | c
        elif opt not in IGNORED_OPTIONS:
            plain.append(opt)
    parsed = parse_mount_options(plain)
    kind = m.text("type", "") or ""
    flags = parsed.flags | MS_BIND if kind == "bind" else parsed.flags
    if not kind and not flags & MS_BIND:
        raise m.fail("type", f"mount of {dest} needs a type, or a bind/rbind option")
    return Mount(
        destination=os.path.normpath(dest),
        type=kind or "bind",
        source=m.text("source", "") or "",
        flags=flags,
        propagation=parsed.propagation,
        data=parsed.data,
        setattr_set=setattr_set,
        setattr_clear=setattr_clear,
    )


def _idmaps(linux: _Reader, key: str) -> tuple[IdMapping, ...]:
    out = []
    for item in linux.items(key):
        size = item.integer("size", 0)
        if size <= 0:
            raise item.fail("size", "must be positive")
        out.append(IdMapping(item.integer("containerID", 0), item.integer("hostID", 0), size))
    return tuple(out)


_DEVICE_TYPES = {"c", "b", "u", "p"}


def _device(d: _Reader) -> Device:
    d.check_object()
    path = d.text("path", "")
    _abs_in_container(d, "path", path)
    kind = d.text("type", "")
    if kind not in _DEVICE_TYPES:
        raise d.fail("type", f"unknown device type {kind!r} (want c, b, u or p)")
    return Device(
        path=path,
        type=kind,
        major=d.integer("major", 0),
        minor=d.integer("minor", 0),
        file_mode=d.integer("fileMode", 0o666),
        uid=d.integer("uid", 0),
        gid=d.integer("gid", 0),
    )


def _propagation(linux: _Reader) -> int:
    from corral.kernel.mount import propagation_flag

    value = linux.text("rootfsPropagation", "")
    if not value:
        return 0
    try:
        return propagation_flag(value)
    except ValueError:
        raise linux.fail("rootfsPropagation", f"unknown propagation {value!r}") from None


_PERSONALITIES = {"LINUX", "LINUX32"}


def _personality(linux: _Reader) -> str | None:
    if not linux.has("personality"):
        return None
    domain = linux.obj("personality").text("domain", "")
    if domain not in _PERSONALITIES:
        raise linux.fail("personality.domain", f"unknown domain {domain!r} (want LINUX or LINUX32)")
    return str(domain)


def _time_offsets(linux: _Reader) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    offsets = linux.obj("timeOffsets")
    if not isinstance(offsets.data, dict):
        return out
    for clock in offsets.data:
        if clock not in ("monotonic", "boottime"):
            raise linux.fail(f"timeOffsets.{clock}", "unknown clock (want monotonic or boottime)")
        r = offsets.obj(clock)
        out[clock] = (r.integer("secs", 0), r.integer("nanosecs", 0))
    return out


_HOOK_KINDS = {
    "prestart": "prestart",
    "createRuntime": "create_runtime",
    "createContainer": "create_container",
    "startContainer": "start_container",
    "poststart": "poststart",
    "poststop": "poststop",
}


def _hooks(h: _Reader) -> Hooks:
    if not isinstance(h.data, dict):
        return Hooks()
    kinds: dict[str, tuple[Hook, ...]] = {}
    for key, attr in _HOOK_KINDS.items():
        hooks = []
        for item in h.items(key):
            path = item.text("path", "")
            if not path or not path.startswith("/"):
                raise item.fail("path", f"hook path {path!r} must be absolute")
            timeout = item.integer("timeout")
            if timeout is not None and timeout <= 0:
                raise item.fail("timeout", "must be positive")
            hooks.append(Hook(path, item.texts("args") or (path,), item.texts("env"), timeout))
        kinds[attr] = tuple(hooks)
    return Hooks(**kinds)


# Devices runc always allows (specconv.AllowedDevices), after the spec's own rules.
_ALLOWED_DEVICES = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),  # null
    DeviceRule(True, "c", 1, 8, "rwm"),  # random
    DeviceRule(True, "c", 1, 7, "rwm"),  # full
    DeviceRule(True, "c", 5, 0, "rwm"),  # tty
    DeviceRule(True, "c", 1, 5, "rwm"),  # zero
    DeviceRule(True, "c", 1, 9, "rwm"),  # urandom
    DeviceRule(True, "c", 136, None, "rwm"),  # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),  # ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),  # tun
)


def _resources(r: _Reader, spec_devices: list[_Reader]) -> Resources:
    raw: list[tuple[str, str]] = []
    mem = r.obj("memory")
    cpu = r.obj("cpu")
    pids = r.obj("pids")
    blk = r.obj("blockIO")
    net = r.obj("network")

    def mem_value(key: str) -> int | None:
        v = mem.integer(key)
        return None if v is None else (UNLIMITED if v < 0 else v)

    swappiness = mem.integer("swappiness")
    if swappiness is not None and 0 <= swappiness <= 100:
        raw.append(("memory.swappiness", str(swappiness)))
    if mem.flag("disableOOMKiller"):
        raw.append(("memory.oom_control", "1"))
    for key, file in (
        ("realtimeRuntime", "cpu.rt_runtime_us"),
        ("realtimePeriod", "cpu.rt_period_us"),
    ):
        if cpu.integer(key):
            raw.append((file, str(cpu.integer(key))))
    if cpu.has("idle"):
        raw.append(("cpu.idle", str(cpu.integer("idle"))))
    pid_limit = pids.integer("limit")
    throttles: list[Throttle] = []
    for key, kind in (
        ("throttleReadBpsDevice", "read_bps"),
        ("throttleWriteBpsDevice", "write_bps"),
        ("throttleReadIOPSDevice", "read_iops"),
        ("throttleWriteIOPSDevice", "write_iops"),
    ):
        for item in blk.items(key):
            throttles.append(
                Throttle(
                    kind,
                    item.integer("major", 0),
                    item.integer("minor", 0),
                    item.integer("rate", 0),
                )
            )
    for item in blk.items("weightDevice"):
        if item.has("weight"):
            device = f"{item.integer('major', 0)}:{item.integer('minor', 0)}"
            raw.append(("blkio.weight_device", f"{device} {item.integer('weight')}"))
    devices: list[DeviceRule] = []
    for item in r.items("devices"):
        kind = item.text("type", "a") or "a"
        if kind not in ("a", "c", "b"):
            raise item.fail("type", f"unknown device type {kind!r} (want a, c or b)")
        access = item.text("access", "rwm") or "rwm"
        if not access or any(ch not in "rwm" for ch in access):
            raise item.fail("access", f"invalid access {access!r} (letters r, w, m)")
        devices.append(
            DeviceRule(
                item.flag("allow"), kind, item.integer("major"), item.integer("minor"), access
            )
        )
    if devices or spec_devices:
        devices.extend(_ALLOWED_DEVICES)
        for d in spec_devices:
            kind = d.text("type", "c")
            if kind in ("c", "b", "u"):
                devices.append(
                    DeviceRule(
                        True,
                        "c" if kind == "u" else kind,
                        d.integer("major", 0),
                        d.integer("minor", 0),
                        "rwm",
                    )
                )
    hugetlb = []
    for item in r.items("hugepageLimits"):
        size = item.text("pageSize", "")
        if not size:
            raise item.fail("pageSize", "missing")
        hugetlb.append((size, item.integer("limit", 0)))
    if net.has("classID"):
        classid: int | None = net.integer("classID")
    else:
        classid = None
    for item in net.items("priorities"):
        raw.append(("net_prio.ifpriomap", f"{item.text('name', '')} {item.integer('priority', 0)}"))
    unified = _str_map(r, "unified")
    raw.extend(unified.items())
    return Resources(
        memory_limit=mem_value("limit"),
        memory_reservation=mem_value("reservation"),
        memory_swap=mem_value("swap"),
        cpu_shares=cpu.integer("shares") or None,
        cpu_quota=(UNLIMITED if (cpu.integer("quota") or 0) < 0 else cpu.integer("quota"))
        if cpu.has("quota")
        else None,
        cpu_period=cpu.integer("period") or None,
        cpuset_cpus=cpu.text("cpus") or None,
        cpuset_mems=cpu.text("mems") or None,
        pids_limit=None if not pid_limit else (UNLIMITED if pid_limit < 0 else pid_limit),
        blkio_weight=blk.integer("weight") or None,
        throttles=tuple(throttles),
        devices=tuple(devices),
        hugetlb=tuple(hugetlb),
        net_cls_classid=classid,
        raw=tuple(raw),
    )


def resources_from_json(data: Any) -> Resources:
    """`update --resources FILE`: a LinuxResources object on its own."""
    if not isinstance(data, dict):
        raise ConfigError("resources: expected a JSON object")
    return _resources(_Reader(data, "resources"), [])
