"""Pulling an image: resolve the reference, pick the platform, fetch config and layers.

Each layer is one streaming pass: bytes from the registry are appended to the blob's
partial file and hashed, inflated (in a second thread, see compression.py), hashed again
for the diff id and unpacked, all at once. No second read of the blob, no temporary tar,
no fsync per file. Both digests are checked before either the blob or the layer becomes
visible. Layers are fetched concurrently; a layer already in the store is not fetched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from corral import fastjson
from corral.errors import DigestMismatch, ImageError
from corral.image import reference
from corral.image.layers import RegistrySource, Source, store_layer
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


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = fastjson.loads(body)
    except ValueError as err:
        raise ImageError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object")
    return doc
