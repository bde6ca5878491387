"""Images for containers: from the store, pulled when missing, or the built-in default.

The built-in image `corral/busybox` needs no network: one layer made from the host's
busybox (Debian's busybox-static) with a symlink per applet, /etc/passwd and /etc/group.
It is made the first time it is asked for and is then an image like any other.
"""

from __future__ import annotations

import os
import sys

from corral.errors import ImageNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BUILTIN = "corral/busybox"
BUILTIN_FULL = "docker.io/corral/busybox:latest"


def resolve(data_root: str, name: str, *, pull_missing: bool = True, quiet: bool = False) -> Any:
    from corral.image import reference
    from corral.image.store import Store

    store = Store(os.path.join(data_root, "image"))
    try:
        return store.image(name)
    except ImageNotFound:
        if str(reference.parse(name)) == BUILTIN_FULL:
            return build_builtin(store)
        if not pull_missing:
            raise
    from corral.image.progress import for_stream
    from corral.image.pull import pull

    print(f"Unable to find image '{name}' locally", file=sys.stderr)
    return pull(store, name, for_stream(sys.stderr, quiet))


def build_builtin(store: Any) -> Any:
    import hashlib
    import io
    import json
    import tempfile

    from corral.image import reference
    from corral.image.layers import FileSource, store_layer
    from corral.image.progress import Progress
    from corral.runtime.bundle import build_busybox_rootfs

    with tempfile.TemporaryDirectory(prefix="corral-builtin-") as tmp:
        rootfs = build_busybox_rootfs(os.path.join(tmp, "rootfs"))
        layer = _tar(rootfs)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "corral: the host's busybox"}
        ],
    }
    config_bytes = json.dumps(config).encode()
    with store.adding():
        config_digest = store.put_blob(config_bytes)
        store_layer(
            store,
            diff_id,
            len(layer),
            diff_id,
            lambda ingest: FileSource(ingest, io.BytesIO(layer)),
            Progress(),
            1 << 34,
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": diff_id,
                    "size": len(layer),
                }
            ],
        }
        body = json.dumps(manifest).encode()
        desc = {
            "mediaType": manifest["mediaType"],
            "digest": store.put_blob(body),
            "size": len(body),
        }
        ref = reference.parse(BUILTIN_FULL)
        store.add_image(ref.name, ref.tag, desc, size=store.layer_size(diff_id))
    return store.image(BUILTIN_FULL)


def _tar(root: str) -> bytes:
    """Deterministic: sorted entries, fixed times and owners, so every machine with the
    same busybox makes the same image id."""
    import io
    import shutil
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*sorted(dirnames), *sorted(filenames)]:
                full = os.path.join(dirpath, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, root))
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    shutil.rmtree(root, ignore_errors=True)
    return buf.getvalue()
