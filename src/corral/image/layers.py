"""Putting one layer into the store: its blob (verified, renamed into place) and its
unpacked directory (verified against the diff id, renamed into place), in one streaming
pass over the compressed bytes, whatever they come from (a registry, an archive).

Lock order is always blob, then layer: concurrent writers of the same content wait for
each other and the loser finds the work done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, BinaryIO, Protocol

from corral.errors import DigestMismatch, ImageError, RegistryError
from corral.image.compression import HashingReader, decompressed
from corral.image.progress import Progress
from corral.image.store import Ingest, Store
from corral.image.unpack import unpack_tar


class Source(Protocol):
    """The compressed bytes of one blob; every byte read is also written to the ingest."""

    def read(self, n: int = -1) -> bytes: ...

    def drain(self) -> None: ...


def store_layer(
    store: Store,
    digest: str,
    size: int | None,
    diff_id: str,
    open_source: Callable[[Ingest], Source],
    progress: Progress,
    max_bytes: int,
) -> int:
    """Make sure blob `digest` and its unpacked layer are stored; returns the layer's size."""
    if store.has_blob(digest) and store.has_layer(diff_id):
        progress.status(digest, "Already exists")
        return store.layer_size(diff_id)
    with store.ingest(digest, size) as ingest, store.layer_writer(diff_id) as work:
        if work is None:  # unpacked already (from another blob of the same content)
            if not ingest.done:
                open_source(ingest).drain()
                ingest.commit()
            progress.status(digest, "Already exists")
            return store.layer_size(diff_id)
        if ingest.done:
            progress.status(digest, "Extracting")
            with open(store.blob_path(digest), "rb") as blob:
                layer_size = unpack_verified(blob, work, diff_id, max_bytes)
        else:
            progress.status(digest, "Pulling fs layer")
            source = open_source(ingest)
            try:
                layer_size = unpack_verified(source, work, diff_id, max_bytes)
                source.drain()
            except RegistryError:
                raise  # the network failed: keep the partial blob for the next pull to resume
            except ImageError:
                ingest.restart()  # bad content: nothing of it is worth keeping
                raise
            ingest.commit()
        store.commit_layer(diff_id, work, layer_size)
    progress.status(digest, "Pull complete")
    return layer_size


def unpack_verified(compressed: BinaryIO | Source, work: str, diff_id: str, max_bytes: int) -> int:
    """Inflate and unpack into `work`; the uncompressed stream must hash to `diff_id`."""
    plain = HashingReader(decompressed(compressed))  # type: ignore[arg-type]
    stats = unpack_tar(plain, work, overlay=True, max_bytes=max_bytes, fresh=True)  # type: ignore[arg-type]
    plain.drain()
    if plain.digest() != diff_id:
        raise DigestMismatch(f"layer {diff_id}: uncompressed content has digest {plain.digest()}")
    return stats.bytes


class FileSource:
    """A blob read from a local file (an archive member): copied into the ingest as read."""

    def __init__(self, ingest: Ingest, file: IO[bytes]) -> None:
        ingest.restart()
        self.ingest = ingest
        self.file = file

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n if n >= 0 else 1 << 20)
        if data:
            self.ingest.write(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
