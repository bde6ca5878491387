"""Pulling an image: resolve the reference, pick the platform, fetch config and layers.

Each layer is one streaming pass: bytes from the registry are appended to the blob's
partial file and hashed, inflated (in a second thread, see compression.py), hashed again
for the diff id and unpacked, all at once. No second read of the blob, no temporary tar,
no fsync per file. Both digests are checked before either the blob or the layer becomes
visible. Layers are fetched concurrently; a layer already in the store is not fetched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from corral import fastjson
from corral.errors import DigestMismatch, ImageError
from corral.image import reference
from corral.image.layers import Source, store_layer
from corral.image.progress import Progress
from corral.image.registry import BlobReader, Registry
from corral.image.store import Image, Ingest, Store
from corral.image.unpack import DEFAULT_MAX_BYTES
from corral.oci import image as spec
from corral.structs import record

DEFAULT_JOBS = 3


@record
class PullOptions:
    platform: dict[str, str] | None = None
    authfile: str | None = None
    insecure: list[str] | None = None
    certs_dir: str | None = None
    jobs: int = DEFAULT_JOBS
    max_layer_bytes: int = DEFAULT_MAX_BYTES


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pull(
    store: Store, name: str, progress: Progress | None = None, options: PullOptions | None = None
) -> Image:
    progress = progress or Progress()
    options = options or PullOptions()
    ref = reference.parse(name)
    registry = Registry(
        ref.api_host,
        authfile=options.authfile,
        insecure=options.insecure,
        certs_dir=options.certs_dir,
    )
    try:
        return _pull(store, ref, registry, progress, options)
    finally:
        registry.close()
        progress.finish()


def _pull(
    store: Store,
    ref: reference.Reference,
    registry: Registry,
    progress: Progress,
    options: PullOptions,
) -> Image:
    tag_or_digest = ref.digest or ref.tag or reference.DEFAULT_TAG
    progress.message(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    body, media = registry.manifest(ref.repository, tag_or_digest)
    digest = _sha256(body)
    if ref.digest and digest != ref.digest:
        raise DigestMismatch(f"{ref}: the registry's manifest has digest {digest}")
    index_digest = None
    if media in spec.INDEX_TYPES:
        index_digest = digest
        entry = spec.pick_manifest(
            _json(body, "image index"), options.platform or spec.default_platform()
        )
        body, media = registry.manifest(ref.repository, entry["digest"])
        digest = _sha256(body)
        if digest != entry["digest"]:
            raise DigestMismatch(f"{ref}: manifest {entry['digest']} arrived with digest {digest}")
    elif media not in spec.MANIFEST_TYPES:
        raise ImageError(f"{ref}: unsupported manifest type {media!r}")
    manifest = spec.check_manifest(_json(body, "manifest"))

    with store.adding():
        config_digest = manifest["config"]["digest"]
        if store.has_blob(config_digest):
            config = store.read_json(config_digest)
        else:
            config_bytes = registry.blob(ref.repository, config_digest)
            store.put_blob(config_bytes, config_digest)
            config = _json(config_bytes, "image config")
        spec.check_config(config, len(manifest["layers"]))
        layers = list(zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True))
        for desc, _diff in layers:
            progress.start(desc["digest"], desc["size"])
        size = 0
        with ThreadPoolExecutor(max(1, options.jobs), thread_name_prefix="layer") as pool:
            futures = [
                pool.submit(
                    store_layer,
                    store,
                    desc["digest"],
                    desc["size"],
                    diff,
                    _opener(registry, ref.repository, progress),
                    progress,
                    options.max_layer_bytes,
                )
                for desc, diff in layers
            ]
            for future in futures:
                size += future.result()
        store.put_blob(body, digest)
        desc = {"mediaType": media, "digest": digest, "size": len(body)}
        store.add_image(ref.name, ref.tag, desc, index_digest=index_digest, size=size)
    progress.message(f"Digest: {index_digest or digest}")
    progress.message(f"Status: Downloaded newer image for {ref.familiar()}")
    return store.image(f"{ref.name}@{digest}")


def _opener(registry: Registry, repo: str, progress: Progress) -> Callable[[Ingest], Source]:
    def open_source(ingest: Ingest) -> Source:
        return RegistrySource(ingest, BlobReader(registry, repo, ingest.digest, 0), progress)

    return open_source


class RegistrySource:
    """The blob's bytes: first what an interrupted pull left in the partial file, then the
    rest from the registry (a Range request), each new chunk appended to the partial."""

    def __init__(self, ingest: Ingest, net: BlobReader, progress: Progress) -> None:
        self.ingest = ingest
        self.net = net
        self.progress = progress
        self._resumed: Iterator[bytes] | None = ingest.resume()
        self._pending = b""
        self._skip = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 20
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        if self._resumed is not None:
            chunk = next(self._resumed, None)
            if chunk is not None:
                self.progress.advance(self.ingest.digest, len(chunk))
                out, self._pending = chunk[:n], chunk[n:]
                return out
            self._resumed = None
            self.net.position = self.ingest.hash_count
            start = self.net.open()
            self._skip = self.ingest.hash_count - start  # server ignored Range: skip what we have
        while True:
            data = self.net.read(max(n, 1 << 16) if self._skip else n)
            if not data:
                if self._skip:
                    raise ImageError(f"blob {self.ingest.digest}: shorter than before")
                return b""
            if self._skip:
                drop = min(self._skip, len(data))
                self._skip -= drop
                data = data[drop:]
                if not data:
                    continue
            self.ingest.write(data)
            self.progress.advance(self.ingest.digest, len(data))
            return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
        self.net.close()


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = fastjson.loads(body)
    except ValueError as err:
        raise ImageError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object")
    return doc
