"""The config.json `corral-runtime spec` writes (runc's default, with a cgroup namespace)."""

from __future__ import annotations

import copy

from . import SPEC_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_DEFAULT: dict[str, Any] = {
    "ociVersion": SPEC_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": _DEFAULT_CAPS,
            "effective": _DEFAULT_CAPS,
            "permitted": _DEFAULT_CAPS,
            "ambient": _DEFAULT_CAPS,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "corral",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "cgroup"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}


def default_spec(rootless: bool = False, uid: int = 0, gid: int = 0) -> dict[str, Any]:
    """The config.json `corral-runtime spec` writes (runc's, with a cgroup namespace)."""
    spec = copy.deepcopy(_DEFAULT)
    if rootless:
        linux = spec["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        linux.pop("resources", None)
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"] + [
            {
                "destination": "/sys/fs/cgroup",
                "type": "none",
                "source": "/sys/fs/cgroup",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        ]
        for m in spec["mounts"]:
            if m["type"] == "sysfs":
                m.update(
                    type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"]
                )
            if m["type"] == "devpts":
                m["options"] = [o for o in m["options"] if o != "gid=5"]
    return spec
