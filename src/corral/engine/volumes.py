"""Mounts as docker spells them, and named volumes.

    -v /host/path:/in/container[:ro]      a bind mount (the host directory is made if missing)
    -v NAME:/in/container[:ro]            a named volume (made on first use)
    -v /in/container                      an anonymous volume
    --mount type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..]
    --tmpfs /in/container[:opts]

Volumes live in <data root>/volumes/<name>/_data; a volume in use by any container (running
or not) cannot be removed.
"""

from __future__ import annotations

import os
import re
import shutil
import time

from corral import fastjson
from corral.errors import ConfigError, ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class VolumeError(ContainerError):
    pass


def parse_volume(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) == 1:
        return {
            "type": "volume",
            "source": "",
            "target": _target(parts[0], text),
            "readonly": False,
        }
    if len(parts) not in (2, 3):
        raise ConfigError(f"invalid volume specification {text!r}: expected SOURCE:TARGET[:MODE]")
    source, target = parts[0], _target(parts[1], text)
    mode = parts[2].split(",") if len(parts) == 3 else []
    for m in mode:
        if m not in (
            "ro",
            "rw",
            "z",
            "Z",
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "nocopy",
        ):
            raise ConfigError(f"invalid volume specification {text!r}: unknown mode {m!r}")
    readonly = "ro" in mode
    if source.startswith("/"):
        return {
            "type": "bind",
            "source": os.path.normpath(source),
            "target": target,
            "readonly": readonly,
            "create": True,
        }
    if not _VOLUME_NAME.match(source):
        raise ConfigError(
            f"invalid volume name {source!r}: use letters, digits and _.- (2+ characters)"
        )
    return {"type": "volume", "source": source, "target": target, "readonly": readonly}


def parse_mount(text: str) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        fields[key.strip()] = value if sep else "true"
    kind = fields.pop("type", "volume")
    source = fields.pop("source", fields.pop("src", ""))
    target = fields.pop("target", fields.pop("destination", fields.pop("dst", "")))
    readonly = fields.pop("readonly", fields.pop("ro", "false")) in ("true", "1", "")
    if not target:
        raise ConfigError(f"--mount {text!r}: target is required")
    out: dict[str, Any] = {
        "type": kind,
        "source": source,
        "target": _target(target, text),
        "readonly": readonly,
    }
    if kind == "bind":
        if not source.startswith("/"):
            raise ConfigError(f"--mount {text!r}: a bind source must be an absolute path")
        if not os.path.exists(source):
            raise ConfigError(f"--mount {text!r}: bind source path does not exist: {source}")
    elif kind == "tmpfs":
        size = fields.pop("tmpfs-size", "")
        mode = fields.pop("tmpfs-mode", "")
        out["options"] = [
            o for o in (f"size={size}" if size else "", f"mode={mode}" if mode else "") if o
        ]
    elif kind != "volume":
        raise ConfigError(f"--mount {text!r}: unknown type {kind!r} (bind, volume or tmpfs)")
    if fields:
        raise ConfigError(f"--mount {text!r}: unknown option(s) {', '.join(sorted(fields))}")
    return out


def parse_tmpfs(text: str) -> dict[str, Any]:
    target, _, opts = text.partition(":")
    return {
        "type": "tmpfs",
        "source": "",
        "target": _target(target, text),
        "readonly": False,
        "options": [o for o in opts.split(",") if o],
    }


def _target(path: str, text: str) -> str:
    if not path.startswith("/"):
        raise ConfigError(f"invalid mount {text!r}: the container path {path!r} must be absolute")
    if path == "/":
        raise ConfigError(f"invalid mount {text!r}: cannot mount over /")
    return os.path.normpath(path)


class Volumes:
    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "volumes")

    def path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def create(self, name: str = "", labels: dict[str, str] | None = None) -> str:
        name = name or os.urandom(32).hex()
        if not _VOLUME_NAME.match(name):
            raise VolumeError(f"invalid volume name {name!r}")
        vdir = os.path.join(self.root, name)
        os.makedirs(self.root, 0o700, exist_ok=True)
        try:
            os.mkdir(vdir, 0o700)
        except FileExistsError:
            return name  # docker: creating an existing volume is not an error
        os.mkdir(os.path.join(vdir, "_data"), 0o755)
        meta = {
            "Name": name,
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Labels": labels or {},
            "Driver": "local",
        }
        with open(os.path.join(vdir, "meta.json"), "w") as f:
            f.write(fastjson.dumps(meta))
        return name

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.path(name))

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if self.exists(n))
        except FileNotFoundError:
            return []

    def inspect(self, name: str) -> dict[str, Any]:
        if not self.exists(name):
            raise VolumeError(f"no such volume: {name}")
        try:
            with open(os.path.join(self.root, name, "meta.json"), "rb") as f:
                meta: dict[str, Any] = fastjson.loads(f.read())
        except (OSError, ValueError):
            meta = {"Name": name, "Driver": "local", "Labels": {}}
        meta["Mountpoint"] = self.path(name)
        meta["Scope"] = "local"
        return meta

    def remove(self, name: str, users: list[str], force: bool = False) -> None:
        if not self.exists(name):
            if force:
                return
            raise VolumeError(f"no such volume: {name}")
        if users:
            raise VolumeError(
                f"volume {name} is in use by container(s) {', '.join(u[:12] for u in users)}"
            )
        shutil.rmtree(os.path.join(self.root, name))


def oci_mounts(mounts: list[dict[str, Any]], volumes: Volumes) -> list[dict[str, Any]]:
    """The user's mounts as OCI mounts (volumes made on first use, bind sources checked)."""
    out = []
    for m in mounts:
        ro = ["ro"] if m.get("readonly") else []
        if m["type"] == "tmpfs":
            out.append(
                {
                    "destination": m["target"],
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "nodev", *m.get("options", []), *ro],
                }
            )
            continue
        if m["type"] == "volume":
            if not m["source"]:
                m["source"] = volumes.create()
                m["anonymous"] = True  # removed with the container by rm -v and --rm
            elif not volumes.exists(m["source"]):
                volumes.create(m["source"])
            source = volumes.path(m["source"])
        else:
            source = m["source"]
            if not os.path.exists(source):
                if not m.get("create"):
                    raise ConfigError(f"bind source path does not exist: {source}")
                os.makedirs(source, 0o755)  # what docker does for -v
        out.append(
            {
                "destination": m["target"],
                "type": "bind",
                "source": source,
                "options": ["rbind", "rprivate", *ro],
            }
        )
    return out
