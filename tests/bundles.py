"""OCI bundles over a busybox rootfs (Debian's busybox-static), for runtime tests."""

from __future__ import annotations

import copy
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from corral.oci.defaults import default_spec
from corral.runtime.bundle import build_busybox_rootfs

CACHE = Path("/var/tmp/corral-test-rootfs")


@cache
def busybox_rootfs() -> Path:
    """A minimal rootfs from the host's busybox, built once and shared (tests copy it)."""
    return Path(build_busybox_rootfs(str(CACHE / "busybox")))


def make_bundle(path: Path, args: list[str], **changes: Any) -> dict[str, Any]:
    """A bundle at `path` with its own copy of the rootfs; returns the spec (also written)."""
    path.mkdir(parents=True, exist_ok=True)
    rootfs = path / "rootfs"
    if not rootfs.exists():
        shutil.copytree(busybox_rootfs(), rootfs, symlinks=True)
    spec = copy.deepcopy(default_spec())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"]["readonly"] = False
    for key, value in changes.items():
        spec[key] = value
    write_spec(path, spec)
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> None:
    (path / "config.json").write_text(json.dumps(spec, indent=1))


def oci_archive(rootfs: Path, archive: Path, name: str) -> None:
    """An OCI image archive (what `ctr image import` and `podman load` read) of `rootfs`,
    one layer, tagged `name`. Written with tarfile: creating archives is safe; only
    extracting untrusted ones is not."""
    import gzip
    import hashlib
    import io
    import tarfile

    layer_raw = io.BytesIO()
    with tarfile.open(fileobj=layer_raw, mode="w") as tar:
        tar.add(str(rootfs), arcname=".")
    raw = layer_raw.getvalue()
    gz = gzip.compress(raw, compresslevel=1, mtime=0)

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(gz),
                    "size": len(gz),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    for blob in (config, manifest, gz):
        files["blobs/sha256/" + digest(blob).split(":")[1]] = blob
    with tarfile.open(archive, "w") as out:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
