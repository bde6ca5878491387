"""Images in and out without a registry: docker-archive (what `docker save` writes and
`docker load` reads) and OCI archives (a tar of an OCI image layout, podman's and
skopeo's `oci-archive`).

Loading reads the archive's members in place (never extracting it), and every layer goes
through the same verified, crash-safe path as a pull (layers.store_layer). A compressed
archive (`docker save | gzip`) is inflated to a temporary file first: tar members are
read out of order, and seeking in a gzip stream would inflate it again and again.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

from corral import fastjson
from corral.errors import ImageError
from corral.image import reference
from corral.image.compression import compression_of, decompressed
from corral.image.layers import FileSource, store_layer
from corral.image.progress import Progress
from corral.image.store import Image, Store
from corral.image.unpack import DEFAULT_MAX_BYTES
from corral.oci import image as spec

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
CONTAINERD_NAME = "io.containerd.image.name"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def _open_tar(stream: BinaryIO) -> Iterator[tarfile.TarFile]:
    head = stream.read(4)
    rest: IO[bytes]
    with tempfile.TemporaryFile(dir=os.environ.get("TMPDIR")) as tmp:
        if compression_of(head) != "none":
            shutil.copyfileobj(decompressed(_Prefixed(head, stream)), tmp, 1 << 20)  # type: ignore[arg-type]
            rest = tmp
        elif stream.seekable():
            stream.seek(0)
            rest = stream
        else:
            tmp.write(head)
            shutil.copyfileobj(stream, tmp, 1 << 20)
            rest = tmp
        rest.seek(0)
        try:
            with tarfile.open(fileobj=rest, mode="r:") as tar:
                yield tar
        except tarfile.TarError as err:
            raise ImageError(f"not an image archive: {err}") from None


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = (self.head, b"") if n < 0 else (self.head[:n], self.head[n:])
            return out
        return self.rest.read(n)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    name = name.removeprefix("./")
    for candidate in (name, f"./{name}"):
        try:
            info = tar.getmember(candidate)
        except KeyError:
            continue
        if not info.isreg():
            raise ImageError(f"archive member {name!r} is not a regular file")
        f = tar.extractfile(info)
        assert f is not None
        return f
    raise ImageError(f"archive has no member {name!r}")


def _has(tar: tarfile.TarFile, name: str) -> bool:
    names = set(tar.getnames())
    return name in names or f"./{name}" in names


def load(
    store: Store,
    stream: BinaryIO,
    progress: Progress | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[str]:
    """Load every image in the archive; returns the names (or ids) loaded."""
    progress = progress or Progress()
    with _open_tar(stream) as tar, store.adding():
        if _has(tar, "manifest.json"):
            return _load_docker(store, tar, progress, max_bytes)
        if _has(tar, "index.json") and _has(tar, "oci-layout"):
            return _load_oci(store, tar, progress, max_bytes)
        raise ImageError("not an image archive: no manifest.json (docker) or index.json (OCI)")


def _load_docker(
    store: Store, tar: tarfile.TarFile, progress: Progress, max_bytes: int
) -> list[str]:
    try:
        entries = fastjson.loads(_member(tar, "manifest.json").read())
    except ValueError as err:
        raise ImageError(f"docker archive: manifest.json is not JSON: {err}") from None
    if not isinstance(entries, list):
        raise ImageError("docker archive: manifest.json is not a list")
    loaded: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageError(f"docker archive: manifest.json entry {i} has no Config")
        config_bytes = _member(tar, entry["Config"]).read()
        layer_paths = entry.get("Layers") or []
        config = fastjson.loads(config_bytes)
        spec.check_config(config, len(layer_paths))
        config_digest = store.put_blob(config_bytes)
        descs = []
        size = 0
        for path, diff_id in zip(layer_paths, config["rootfs"]["diff_ids"], strict=True):
            digest, length, media = _blob_identity(tar, path)
            progress.start(digest, length)

            def opener(ingest: Any, path: str = path) -> FileSource:
                return FileSource(ingest, _member(tar, path))

            size += store_layer(store, digest, length, diff_id, opener, progress, max_bytes)
            descs.append({"mediaType": media, "digest": digest, "size": length})
        manifest = {
            "schemaVersion": 2,
            "mediaType": spec.OCI_MANIFEST,
            "config": {
                "mediaType": spec.OCI_CONFIG,
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": descs,
        }
        body = fastjson.dumps(manifest).encode()
        desc = {"mediaType": spec.OCI_MANIFEST, "digest": store.put_blob(body), "size": len(body)}
        tags = entry.get("RepoTags") or []
        for tag in tags:
            ref = reference.parse(tag)
            store.add_image(ref.name, ref.tag, desc, size=size)
            loaded.append(f"Loaded image: {ref.familiar()}")
        if not tags:
            store.add_image("", None, desc, size=size)
            loaded.append(f"Loaded image ID: {config_digest}")
    return loaded


def _blob_identity(tar: tarfile.TarFile, path: str) -> tuple[str, int, str]:
    """(digest, size, media type) of an archive member, hashed in one pass."""
    f = _member(tar, path)
    h = hashlib.sha256()
    head = f.read(4)
    h.update(head)
    length = len(head)
    while chunk := f.read(1 << 20):
        h.update(chunk)
        length += len(chunk)
    kind = compression_of(head)
    media = {"gzip": spec.OCI_LAYER_GZIP, "zstd": spec.OCI_LAYER_ZSTD}.get(kind, spec.OCI_LAYER)
    return "sha256:" + h.hexdigest(), length, media


def _load_oci(store: Store, tar: tarfile.TarFile, progress: Progress, max_bytes: int) -> list[str]:
    def blob(digest: str) -> IO[bytes]:
        algo, _, value = spec.check_digest(digest, "archive descriptor").partition(":")
        return _member(tar, f"blobs/{algo}/{value}")

    def verified(digest: str) -> bytes:
        data = blob(digest).read()
        if _sha256(data) != digest:
            raise ImageError(f"OCI archive: blob {digest} does not match its digest")
        return data

    index = fastjson.loads(_member(tar, "index.json").read())
    loaded: list[str] = []
    for entry in index.get("manifests", []):
        spec.check_descriptor(entry, "OCI archive index entry")
        media = entry.get("mediaType", spec.OCI_MANIFEST)
        body = verified(entry["digest"])
        index_digest = None
        if media in spec.INDEX_TYPES:
            index_digest = entry["digest"]
            picked = spec.pick_manifest(fastjson.loads(body), spec.default_platform())
            body, media = verified(picked["digest"]), picked.get("mediaType", spec.OCI_MANIFEST)
        manifest = spec.check_manifest(fastjson.loads(body))
        config_bytes = verified(manifest["config"]["digest"])
        config = spec.check_config(fastjson.loads(config_bytes), len(manifest["layers"]))
        store.put_blob(config_bytes, manifest["config"]["digest"])
        size = 0
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            progress.start(layer["digest"], layer["size"])

            def opener(ingest: Any, digest: str = layer["digest"]) -> FileSource:
                return FileSource(ingest, blob(digest))

            size += store_layer(
                store, layer["digest"], layer["size"], diff_id, opener, progress, max_bytes
            )
        digest = store.put_blob(body)
        desc = {"mediaType": media, "digest": digest, "size": len(body)}
        name = _oci_name(entry.get("annotations") or {})
        if name:
            ref = reference.parse(name)
            store.add_image(ref.name, ref.tag, desc, index_digest=index_digest, size=size)
            loaded.append(f"Loaded image: {ref.familiar()}")
        else:
            store.add_image("", None, desc, index_digest=index_digest, size=size)
            loaded.append(f"Loaded image ID: {manifest['config']['digest']}")
    return loaded


def _oci_name(annotations: dict[str, str]) -> str | None:
    """containerd writes the full name under its own key and the tag as ref.name; skopeo and
    podman write a full name or just a tag (which cannot name an image on its own)."""
    full = annotations.get(CONTAINERD_NAME)
    if full:
        return full
    ref = annotations.get(spec.REF_NAME)
    if ref and ("/" in ref or ":" in ref):
        return ref
    return None


# ----- save ------------------------------------------------------------------------------


def save(store: Store, names: list[str], out: BinaryIO, fmt: str = DOCKER_ARCHIVE) -> None:
    if fmt not in FORMATS:
        raise ImageError(f"unknown archive format {fmt!r} (use {' or '.join(FORMATS)})")
    images: list[tuple[str | None, Image]] = []
    for name in names:
        img = store.image(name)
        try:
            ref = reference.parse(name)
            full = str(ref) if str(ref) in img.names else None
        except ImageError:
            full = None
        images.append((full, img))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if fmt == DOCKER_ARCHIVE:
            _save_docker(store, images, tar)
        else:
            _save_oci(store, images, tar)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = os.path.getsize(path)
    info.mode = 0o644
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _save_docker(
    store: Store, images: list[tuple[str | None, Image]], tar: tarfile.TarFile
) -> None:
    """docker save's layout: <config hex>.json, <diff hex>/layer.tar (uncompressed), a
    manifest.json listing them with RepoTags, and the legacy `repositories` file."""
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for full, img in images:
        config_name = f"{img.id[7:]}.json"
        if config_name not in written:
            _add_file(tar, config_name, store.blob_path(img.id))
            written.add(config_name)
        layer_names = []
        for layer, diff in zip(img.layers, img.diff_ids, strict=True):
            name = f"{diff[7:]}/layer.tar"
            layer_names.append(name)
            if name in written:
                continue
            written.add(name)
            with tempfile.TemporaryFile() as plain:
                with open(store.blob_path(layer["digest"]), "rb") as blob:
                    shutil.copyfileobj(decompressed(blob), plain, 1 << 20)
                info = tarfile.TarInfo(name)
                info.size = plain.tell()
                info.mode = 0o644
                plain.seek(0)
                tar.addfile(info, plain)
        tags = [reference.parse(n).familiar() for n in ([full] if full else img.names)]
        manifest.append({"Config": config_name, "RepoTags": tags, "Layers": layer_names})
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            repositories.setdefault(repo, {})[t] = img.id[7:]
    _add_bytes(tar, "manifest.json", fastjson.dumps(manifest).encode())
    _add_bytes(tar, "repositories", fastjson.dumps(repositories).encode())


def _save_oci(store: Store, images: list[tuple[str | None, Image]], tar: tarfile.TarFile) -> None:
    """An OCI layout: blobs as stored; index.json names each image with its full name under
    ref.name (skopeo and podman read that) and io.containerd.image.name (containerd)."""
    written: set[str] = set()
    entries = []
    for full, img in images:
        blobs = [img.manifest_digest, img.id, *(layer["digest"] for layer in img.layers)]
        for digest in blobs:
            if digest not in written:
                written.add(digest)
                _add_file(tar, f"blobs/sha256/{digest[7:]}", store.blob_path(digest))
        size = os.path.getsize(store.blob_path(img.manifest_digest))
        names: list[str | None] = [full] if full else [*img.names] or [None]
        for name in names:
            desc: dict[str, Any] = {
                "mediaType": img.manifest.get("mediaType", spec.OCI_MANIFEST),
                "digest": img.manifest_digest,
                "size": size,
            }
            if name:
                desc["annotations"] = {spec.REF_NAME: name, CONTAINERD_NAME: name}
            entries.append(desc)
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    _add_bytes(
        tar, "index.json", fastjson.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    )
