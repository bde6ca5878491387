"""An LXC configuration -> the OCI config.json Corral's engine runs, and the engine record's
network settings. What LXC does by default for a privileged system container is what this
does: /sbin/init as pid 1 on a console, every capability but LXC's default drops (mac_admin,
mac_override, sys_time, sys_module, sys_rawio), LXC's seccomp deny list, new namespaces of
every kind (a user namespace with lxc.idmap), proc/sys/cgroup mounted, /dev populated."""

from __future__ import annotations

import os
import shlex

from corral.engine import networking, ocispec
from corral.errors import ConfigError
from corral.lxc.config import LxcConfig
from corral.oci import SPEC_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LXC_DROPS = ("CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_SYS_RAWIO")
# LXC's common.seccomp: calls a container never needs that reach the host's kernel state.
SECCOMP_DENY = ("kexec_load", "open_by_handle_at", "init_module", "finit_module", "delete_module")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = ocispec.INIT_PATH
TINI = "/usr/bin/tini-static"


def rootfs_dir(config: LxcConfig, origin: str) -> str:
    """The directory lxc.rootfs.path names ("dir:/p" or "/p")."""
    path = config.rootfs
    if path.startswith("dir:"):
        path = path[len("dir:") :]
    if not path:
        raise ConfigError(f"{origin}: lxc.rootfs.path is not set")
    if path.startswith("overlay:"):
        return path  # mounted at start (storage.py)
    if not os.path.isabs(path):
        raise ConfigError(f"{origin}: lxc.rootfs.path {path!r} must be absolute")
    if not os.path.isdir(path):
        raise ConfigError(f"{origin}: lxc.rootfs.path {path}: no such directory")
    return path


def _caps(config: LxcConfig) -> list[str]:
    every = ocispec.host_capabilities()
    if config.cap_keep:
        keep = {_cap(c) for c in config.cap_keep if c != "none"}
        return [c for c in every if c in keep]
    drops = {_cap(c) for c in config.cap_drop} | set(LXC_DROPS)
    return [c for c in every if c not in drops]


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


def _mount_entry(line: str, rootfs: str) -> dict[str, Any] | None:
    """fstab-style `SOURCE TARGET TYPE OPTIONS [DUMP PASS]`, TARGET relative to the rootfs
    (or absolute inside it). LXC's own options: create=dir|file (made before mounting),
    optional (skipped when the source is missing)."""
    source, target, kind, options = shlex.split(line)[:4]
    opts = [o for o in options.split(",") if o and o != "defaults"]
    optional = "optional" in opts
    create = next((o.split("=", 1)[1] for o in opts if o.startswith("create=")), "")
    opts = [o for o in opts if o != "optional" and not o.startswith("create=")]
    if kind == "none" and any(o in ("bind", "rbind") for o in opts):
        kind = "bind"
    if kind == "bind" and not os.path.exists(source):
        if optional:
            return None
        raise ConfigError(f"lxc.mount.entry {line!r}: source {source} does not exist")
    target = "/" + target.lstrip("/")
    if rootfs and not rootfs.startswith("overlay:") and create:
        path = os.path.join(rootfs, target.lstrip("/"))
        if create == "dir":
            os.makedirs(path, exist_ok=True)
        elif not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
    if "ro" in opts and kind == "bind":
        opts = [*opts, "nosuid"] if "nosuid" not in opts else opts
    return {"destination": target, "type": kind, "source": source, "options": opts}


def _idmaps(config: LxcConfig) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    uids, gids = [], []
    for kind, inside, host, count in config.idmaps:
        entry = {"containerID": inside, "hostID": host, "size": count}
        if kind in ("u", "b"):
            uids.append(entry)
        if kind in ("g", "b"):
            gids.append(entry)
    if config.idmaps and (not uids or not gids):
        raise ConfigError("lxc.idmap needs both a 'u' and a 'g' mapping")
    return uids, gids


def build(
    config: LxcConfig,
    name: str,
    cid: str,
    rootfs: str,
    spec: Any,
    *,
    args: list[str] | None = None,
    terminal: bool = True,
) -> dict[str, Any]:
    """The OCI config for this container (`args` replaces the init: lxc execute)."""
    argv = args or config.init_cmd or ["/sbin/init"]
    env = [DEFAULT_PATH, "container=lxc", *config.environment]
    process: dict[str, Any] = {
        "terminal": terminal,
        "user": {"uid": config.init_uid or 0, "gid": config.init_gid or 0},
        "args": argv,
        "env": ocispec.merge_env([], env),
        "cwd": config.init_cwd or "/",
        "capabilities": {k: _caps(config) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": False,
    }
    mounts = ocispec.base_mounts(privileged=False)
    if config.pty_max:
        for m in mounts:
            if m["destination"] == "/dev/pts":
                m["options"].append(f"max={config.pty_max}")
    if args and args[0] == INIT_PATH:
        mounts.append(
            {"destination": INIT_PATH, "type": "bind", "source": TINI, "options": ["bind", "ro"]}
        )
    for line in config.mounts:
        entry = _mount_entry(line, rootfs)
        if entry is not None:
            mounts.append(entry)
    namespaces: list[dict[str, str]] = [
        {"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")
    ]
    netns = networking.namespace(spec)
    if netns is not None:
        namespaces.append(netns)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "cgroupsPath": f"{(os.environ.get('CORRAL_CGROUP_PARENT') or 'corral').rstrip('/')}/{cid}",
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"],
        "seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": list(SECCOMP_DENY), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        },
    }
    uids, gids = _idmaps(config)
    if uids:
        namespaces.append({"type": "user"})
        linux["uidMappings"], linux["gidMappings"] = uids, gids
    annotations = {"io.corral.container.name": name, "io.corral.lxc": "1"}
    root = rootfs
    if rootfs.startswith("overlay:"):
        root = overlay_target(rootfs, spec)
        annotations["io.corral.mounted-root"] = root  # the engine unmounts it at exit
    return {
        "ociVersion": SPEC_VERSION,
        "process": process,
        "root": {"path": root, "readonly": False},
        "hostname": config.uts_name or name,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }


def overlay_target(rootfs: str, spec: Any) -> str:
    """Where an overlay rootfs is mounted: next to its upper directory."""
    upper = rootfs.split(":")[-1]
    return os.path.join(os.path.dirname(upper), "rootfs")
