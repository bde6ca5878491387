"""A container's OCI runtime spec, from its image's config and what the user asked for,
with docker's meanings: ENTRYPOINT + CMD, environment merged by key, the user resolved in
the image's /etc/passwd and /etc/group, docker's capabilities and seccomp profile, its
masked and read-only paths, /etc/hostname, /etc/hosts and /etc/resolv.conf per container.
"""

from __future__ import annotations

import os

from corral.engine import networking, profiles
from corral.engine.model import ContainerSpec
from corral.errors import ConfigError
from corral.oci import SPEC_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/corral-init"
_MASKED = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]  # fmt: skip
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _mount(dest: str, kind: str, source: str, *options: str) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


def base_mounts(privileged: bool) -> list[dict[str, Any]]:
    ro = () if privileged else ("ro",)
    devpts = ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")
    return [
        _mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount("/dev/pts", "devpts", "devpts", *devpts),
        _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", *ro),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", *ro),
        _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
    ]


def merge_env(image_env: list[str], user_env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *user_env]:
        key, sep, value = item.partition("=")
        merged[key] = f"{key}={value}" if sep else key
    if "PATH" not in merged:
        merged = {"PATH": DEFAULT_PATH, **merged}
    return list(merged.values())


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    """Lines of the image's /etc/passwd or /etc/group, split on ':' (never following a
    symlink out of the rootfs: the file is read only when it is a plain file)."""
    path = os.path.join(rootfs, "etc", name)
    if os.path.islink(path) or not os.path.isfile(path):
        return []
    with open(path, errors="replace") as f:
        return [
            line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")
        ]


def resolve_user(rootfs: str, user: str) -> dict[str, Any]:
    """'name|uid[:group|gid]' -> an OCI process.user, as docker resolves it in the image."""
    name, _, group = (user or "0").partition(":")
    passwd = _read_db(rootfs, "passwd")
    uid: int | None = None
    gid: int | None = None
    username = None
    for entry in passwd:
        if len(entry) >= 4 and (entry[0] == name or (name.isdigit() and entry[2] == name)):
            uid, gid, username = int(entry[2]), int(entry[3]), entry[0]
            break
    if uid is None:
        if not name.isdigit():
            raise ConfigError(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(name), 0
    groups = _read_db(rootfs, "group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = [g for g in groups if len(g) >= 3 and g[0] == group]
            if not match:
                raise ConfigError(
                    f"unable to find group {group}: no matching entries in group file"
                )
            gid = int(match[0][2])
    extra = sorted(
        {
            int(g[2])
            for g in groups
            if len(g) >= 4 and username and username in g[3].split(",") and int(g[2]) != gid
        }
    )
    out: dict[str, Any] = {"uid": uid, "gid": gid or 0}
    if extra:
        out["additionalGids"] = extra
    return out


def host_capabilities() -> list[str]:
    """Every capability this process may pass on: its bounding set (a host can withhold
    some, and asking for those fails)."""
    from corral.kernel.caps import CAPABILITIES

    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return [name for bit, name in enumerate(CAPABILITIES) if bounding >> bit & 1]


def _capabilities(spec: ContainerSpec) -> list[str]:
    if spec.privileged:
        return host_capabilities()
    caps = list(profiles.DEFAULT_CAPS)
    adds = [_cap_name(c) for c in spec.cap_add]
    drops = [_cap_name(c) for c in spec.cap_drop]
    if "CAP_ALL" in drops:
        caps = []
    if "CAP_ALL" in adds:
        caps = host_capabilities()
    for cap in adds:
        if cap != "CAP_ALL" and cap not in caps:
            caps.append(cap)
    return [c for c in caps if c not in drops]


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


# engine resource name -> (OCI linux.resources section, key)
_RESOURCE_KEYS = {
    "memory": ("memory", "limit"),
    "memory_swap": ("memory", "swap"),
    "memory_reservation": ("memory", "reservation"),
    "cpu_shares": ("cpu", "shares"),
    "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"),
    "pids_limit": ("pids", "limit"),
    "blkio_weight": ("blockIO", "weight"),
}


def oci_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """The engine's resource settings (spec.resources) as OCI linux.resources."""
    from corral.cgroups.resources import cpus_to_quota

    out: dict[str, Any] = {}
    for name, value in resources.items():
        if not value:
            continue
        if name == "cpus":
            quota, period = cpus_to_quota(float(value))
            out.setdefault("cpu", {}).update(quota=quota, period=period)
        elif name in _RESOURCE_KEYS:
            section, key = _RESOURCE_KEYS[name]
            out.setdefault(section, {})[key] = value
    return out


def _devices(spec: ContainerSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, device cgroup rules) for --device HOST[:CONTAINER[:PERMS]]."""
    devices, rules = [], []
    for dev in spec.devices:
        host = dev["host"]
        try:
            st = os.stat(host)
        except FileNotFoundError:
            raise ConfigError(f"--device {host}: no such device on the host") from None
        import stat as stat_mod

        if stat_mod.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat_mod.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise ConfigError(f"--device {host}: not a character or block device")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devices.append(
            {
                "path": dev.get("container") or host,
                "type": kind,
                "major": major,
                "minor": minor,
                "fileMode": st.st_mode & 0o777,
                "uid": 0,
                "gid": 0,
            }
        )
        rules.append(
            {
                "allow": True,
                "type": kind,
                "major": major,
                "minor": minor,
                "access": dev.get("perms", "rwm"),
            }
        )
    return devices, rules


def build(
    spec: ContainerSpec,
    image_config: dict[str, Any],
    rootfs: str,
    cid: str,
    container_dir: str,
    mounts: list[dict[str, Any]],
    init_binary: str | None = None,
    shared_dir: str | None = None,
) -> dict[str, Any]:
    """The config.json for this container. `mounts`: the user's, already resolved to host
    paths (volumes.py). `shared_dir`: for --network container:NAME, that container's
    directory (its hosts and resolv.conf are shared)."""
    img = image_config.get("config") or {}
    entrypoint = spec.entrypoint if spec.entrypoint is not None else (img.get("Entrypoint") or [])
    cmd = spec.cmd or ([] if spec.entrypoint is not None else (img.get("Cmd") or []))
    args = [*entrypoint, *cmd]
    if not args:
        raise ConfigError("no command specified (the image has no CMD or ENTRYPOINT)")
    hostname = spec.hostname or cid[:12]
    env = merge_env(img.get("Env") or [], [f"HOSTNAME={hostname}", *spec.env])
    if spec.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    caps = _capabilities(spec)
    user = resolve_user(rootfs, spec.user or img.get("User") or "0")
    process: dict[str, Any] = {
        "terminal": spec.tty,
        "user": user,
        "args": args,
        "env": env,
        "cwd": spec.workdir or img.get("WorkingDir") or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": spec.no_new_privileges,
        "oomScoreAdj": 0,
    }
    if user["uid"] != 0:
        process["capabilities"]["effective"] = []
        process["capabilities"]["permitted"] = caps
    if spec.ulimits:
        process["rlimits"] = [
            {"type": f"RLIMIT_{u['name'].upper()}", "soft": u["soft"], "hard": u["hard"]}
            for u in spec.ulimits
        ]
    if init_binary:
        process["args"] = [INIT_PATH, "--", *args]
    etc = networking.write_etc_files(container_dir, spec, hostname, shared_dir)
    oci_mounts = base_mounts(spec.privileged)
    for dest, src in etc.items():
        oci_mounts.append(
            {"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
        )
    if init_binary:
        oci_mounts.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": init_binary,
                "options": ["bind", "ro"],
            }
        )
    oci_mounts.extend(mounts)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    netns = networking.namespace(spec)
    if netns is not None:
        namespaces.append(netns)
    devices, device_rules = _devices(spec)
    resources = oci_resources(spec.resources)
    if spec.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        resources["devices"] = [{"allow": False, "access": "rwm"}, *device_rules]
    parent = os.environ.get("CORRAL_CGROUP_PARENT") or "corral"
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": f"{parent.rstrip('/')}/{cid}",
        "devices": devices,
    }
    if not spec.privileged:
        linux["maskedPaths"] = list(_MASKED)
        linux["readonlyPaths"] = list(_READONLY)
        if spec.seccomp != "unconfined":
            linux["seccomp"] = _seccomp(spec.seccomp, caps)
    return {
        "ociVersion": SPEC_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": spec.read_only},
        "hostname": hostname,
        "mounts": oci_mounts,
        "linux": linux,
        "annotations": {"io.corral.container.name": spec.name},
    }


def _seccomp(choice: str, caps: list[str]) -> dict[str, Any]:
    if not choice:
        return profiles.seccomp_profile(caps)
    import json

    try:
        with open(choice) as f:
            profile: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--security-opt seccomp={choice}: {err}") from None
    import copy

    return copy.deepcopy(profile)
