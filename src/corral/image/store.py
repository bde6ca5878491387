"""The image store: an OCI image layout plus unpacked layers, under Corral's data root.

    <root>/oci-layout, index.json, blobs/sha256/<hex>   an OCI image layout (skopeo/umoci `oci:`)
    <root>/ingest/<hex>.partial                         a blob being downloaded (resumable)
    <root>/layers/<diff-id hex>/                        one layer unpacked, overlay form
    <root>/layers/<diff-id hex>.size                    its unpacked size in bytes
    <root>/snapshots/<id>/                              container rootfs snapshots (snapshot.py)
    <root>/locks/                                       flock files

Crash safety comes from two rules: nothing becomes visible under its final name before it is
complete and verified (blobs and layers are renamed into place; index.json is replaced
atomically), and every writer holds a lock whose death releases it (flock), so whoever comes
next can tell leftovers from work in progress and finish or discard them.

Locks: `gc` is held shared by everything that adds content (pull, load) and exclusively by
garbage collection, so a blob downloaded but not yet referenced is never swept; `index`
serialises read-modify-write of index.json; `blob-<hex>` and `layer-<hex>` make one process
the writer of a blob or layer while the others wait for it and then find it done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time

from corral import fastjson
from corral.errors import DigestMismatch, ImageError, ImageInUse, ImageNotFound
from corral.image import reference
from corral.oci import image as spec
from corral.paths import data_root
from corral.structs import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

REPOSITORY = "io.corral.repository"
INDEX_DIGEST = "io.corral.index.digest"
CREATED = "io.corral.pulled"
SIZE = "io.corral.size"
_CHUNK = 1 << 20


def hex_of(digest: str) -> str:
    algo, _, value = spec.check_digest(digest, "digest").partition(":")
    if algo != "sha256":
        raise ImageError(f"digest {digest}: only sha256 content is stored")
    return value


@record
class Image:
    """One image as the store knows it: its manifest, config and the names it goes by."""

    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    names: list[str]
    repository: str | None = None
    index_digest: str | None = None
    pulled: str | None = None
    size: int = 0

    @property
    def id(self) -> str:
        digest: str = self.manifest["config"]["digest"]
        return digest

    @property
    def short_id(self) -> str:
        return hex_of(self.id)[:12]

    @property
    def diff_ids(self) -> list[str]:
        ids: list[str] = self.config["rootfs"]["diff_ids"]
        return ids

    @property
    def layers(self) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = self.manifest["layers"]
        return layers

    @property
    def created(self) -> str | None:
        return self.config.get("created")


class Store:
    def __init__(self, root: str | None = None) -> None:
        self.root = root or os.path.join(data_root(), "image")
        self.blobs = os.path.join(self.root, "blobs", "sha256")
        self.ingest_dir = os.path.join(self.root, "ingest")
        self.layers_dir = os.path.join(self.root, "layers")
        self.snapshots_dir = os.path.join(self.root, "snapshots")
        self.locks_dir = os.path.join(self.root, "locks")
        self.index_path = os.path.join(self.root, "index.json")
        if not os.path.exists(os.path.join(self.root, "oci-layout")):
            self._initialise()

    def _initialise(self) -> None:
        for d in (self.blobs, self.ingest_dir, self.layers_dir, self.snapshots_dir, self.locks_dir):
            os.makedirs(d, 0o700, exist_ok=True)
        if not os.path.exists(self.index_path):
            self._write_json(self.index_path, {"schemaVersion": 2, "manifests": []})
        self._write_json(os.path.join(self.root, "oci-layout"), {"imageLayoutVersion": "1.0.0"})

    # ----- locks --------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
        """flock on locks/<name>; yields False (and holds nothing) if wait=False and busy."""
        fd = os.open(
            os.path.join(self.locks_dir, name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            try:
                fcntl.flock(fd, op if wait else op | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def adding(self) -> contextlib.AbstractContextManager[bool]:
        """Held while content is added: garbage collection waits for it."""
        return self.lock("gc", shared=True)

    # ----- blobs --------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, hex_of(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def read_blob(self, digest: str) -> bytes:
        try:
            with open(self.blob_path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the store") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DigestMismatch(f"blob {digest} in the store is corrupt (run `corral image fsck`)")
        return data

    def read_json(self, digest: str) -> Any:
        try:
            return fastjson.loads(self.read_blob(digest))
        except ValueError as err:
            raise ImageError(f"blob {digest} is not JSON: {err}") from None

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store bytes (a manifest, a config); verifies them against `expected` if given."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise DigestMismatch(f"content fetched as {expected} has digest {digest}")
        path = self.blob_path(digest)
        if not os.path.exists(path):
            tmp = os.path.join(self.ingest_dir, f"{hex_of(digest)}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        return digest

    @contextlib.contextmanager
    def ingest(self, digest: str, size: int | None) -> Iterator[Ingest]:
        """Become the one writer of blob `digest` (waiting for another writer to finish)."""
        with self.lock(f"blob-{hex_of(digest)}"):
            yield Ingest(self, digest, size)

    # ----- layers -------------------------------------------------------------------------

    def layer_path(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, hex_of(diff_id))

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isdir(self.layer_path(diff_id))

    def layer_size(self, diff_id: str) -> int:
        try:
            with open(self.layer_path(diff_id) + ".size") as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return 0

    @contextlib.contextmanager
    def layer_writer(self, diff_id: str) -> Iterator[str | None]:
        """Yields a fresh work directory to unpack into, or None if the layer exists.
        Call commit_layer(diff_id, work, size) inside the block to publish it."""
        hexd = hex_of(diff_id)
        with self.lock(f"layer-{hexd}"):
            if self.has_layer(diff_id):
                yield None
                return
            for stale in os.listdir(self.layers_dir):  # left by a killed writer
                if stale.startswith(f"{hexd}.unpacking"):
                    remove_tree(os.path.join(self.layers_dir, stale))
            work = os.path.join(self.layers_dir, f"{hexd}.unpacking")
            os.mkdir(work, 0o755)
            try:
                yield work
            finally:
                if os.path.exists(work):
                    remove_tree(work)

    def commit_layer(self, diff_id: str, work: str, size: int) -> None:
        final = self.layer_path(diff_id)
        with open(final + ".size", "w") as f:
            f.write(str(size))
        os.rename(work, final)

    # ----- index --------------------------------------------------------------------------

    def _index(self) -> dict[str, Any]:
        try:
            with open(self.index_path, "rb") as f:
                doc = fastjson.loads(f.read())
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise ImageError(f"{self.index_path}: not an OCI image index")
        return doc

    def _write_json(self, path: str, doc: Any) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    @contextlib.contextmanager
    def _editing_index(self) -> Iterator[list[dict[str, Any]]]:
        with self.lock("index"):
            doc = self._index()
            yield doc["manifests"]
            self._write_json(self.index_path, doc)

    def add_image(
        self,
        repository: str,
        tag: str | None,
        manifest: dict[str, Any],
        *,
        index_digest: str | None = None,
        size: int = 0,
    ) -> None:
        """Point `repository:tag` at a stored manifest (the image it named before, if it has
        no other name, stays as a dangling image until prune, as docker keeps it)."""
        annotations = {REPOSITORY: repository, CREATED: _now(), SIZE: str(size)}
        if tag:
            annotations[spec.REF_NAME] = f"{repository}:{tag}"
        if index_digest:
            annotations[INDEX_DIGEST] = index_digest
        desc = {
            "mediaType": manifest["mediaType"],
            "digest": manifest["digest"],
            "size": manifest["size"],
            "annotations": annotations,
        }
        with self._editing_index() as entries:
            name = annotations.get(spec.REF_NAME)
            kept: list[dict[str, Any]] = []
            for entry in entries:
                ann = entry.get("annotations") or {}
                if name and ann.get(spec.REF_NAME) == name:
                    if entry["digest"] == desc["digest"]:
                        continue
                    if not _named_elsewhere(entries, entry, name):
                        dangling = {k: v for k, v in ann.items() if k != spec.REF_NAME}
                        kept.append({**entry, "annotations": dangling})
                    continue
                if entry["digest"] == desc["digest"] and spec.REF_NAME not in ann:
                    continue  # the untagged entry for this manifest: replaced by the new one
                kept.append(entry)
            if not name and any(e["digest"] == desc["digest"] for e in kept):
                entries[:] = kept
                return  # already known by a name: a pull by digest adds nothing
            kept.append(desc)
            entries[:] = kept

    def tag(self, source: str, target: str) -> Image:
        img = self.image(source)
        ref = reference.parse(target)
        if ref.digest:
            raise ImageError(f"cannot tag with a digest: {target}")
        desc = {
            "mediaType": img.manifest.get("mediaType", spec.OCI_MANIFEST),
            "digest": img.manifest_digest,
            "size": os.path.getsize(self.blob_path(img.manifest_digest)),
        }
        self.add_image(ref.name, ref.tag, desc, index_digest=img.index_digest, size=img.size)
        return img

    def images(self) -> list[Image]:
        """Every image, one per manifest, with all its names."""
        by_digest: dict[str, Image] = {}
        for entry in self._index()["manifests"]:
            ann = entry.get("annotations") or {}
            img = by_digest.get(entry["digest"])
            if img is None:
                try:
                    manifest = self.read_json(entry["digest"])
                    config = self.read_json(manifest["config"]["digest"])
                except ImageError:
                    continue  # reported by fsck
                img = Image(
                    manifest_digest=entry["digest"],
                    manifest=manifest,
                    config=config,
                    names=[],
                    repository=ann.get(REPOSITORY),
                    index_digest=ann.get(INDEX_DIGEST),
                    pulled=ann.get(CREATED),
                    size=int(ann.get(SIZE, 0) or 0),
                )
                by_digest[entry["digest"]] = img
            if ann.get(spec.REF_NAME):
                img.names.append(ann[spec.REF_NAME])
        return list(by_digest.values())

    def image(self, name: str) -> Image:
        """Look up by name[:tag], name@digest, full or short image id, or manifest digest."""
        images = self.images()
        try:
            ref = reference.parse(name)
        except ImageError:
            ref = None
        if ref is not None:
            for img in images:
                if ref.digest:
                    if ref.name == img.repository and ref.digest in (
                        img.manifest_digest,
                        img.index_digest,
                    ):
                        return img
                elif str(ref) in img.names:
                    return img
        token = name.removeprefix("sha256:")
        if len(token) >= 3 and all(c in "0123456789abcdef" for c in token):
            found = [
                img
                for img in images
                if hex_of(img.id).startswith(token) or hex_of(img.manifest_digest) == token
            ]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ImageError(f"image id prefix {token!r} is ambiguous")
        raise ImageNotFound(f"no such image: {name}")

    # ----- removal and garbage collection --------------------------------------------------

    def holders(self, image_id: str) -> list[str]:
        """Snapshots (containers) whose rootfs is built on this image."""
        out = []
        try:
            names = os.listdir(self.snapshots_dir)
        except FileNotFoundError:
            return []
        for snap in names:
            try:
                with open(os.path.join(self.snapshots_dir, snap, "image")) as f:
                    if f.read().strip() == image_id:
                        out.append(snap)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return out

    def remove(self, name: str, *, force: bool = False) -> list[str]:
        """`rmi`: untag `name` (or, by id, every name of the image); deletes the image's
        content once no name and no container uses it. Returns docker-style lines."""
        img = self.image(name)
        try:
            ref: reference.Reference | None = reference.parse(name)
        except ImageError:
            ref = None
        by_name = ref is not None and str(ref) in img.names
        by_id = not by_name and not (ref is not None and ref.digest)
        untag = [str(ref)] if by_name else list(img.names)
        if by_id and len(img.names) > 1 and not force:
            raise ImageError(
                f"image {img.short_id} is referenced by several names "
                f"({', '.join(img.names)}): remove them by name, or use --force"
            )
        remaining = [n for n in img.names if n not in untag]
        holders = self.holders(img.id)
        if holders and not remaining and not force:
            raise ImageInUse(
                f"image {name} ({img.short_id}) is used by container(s) {', '.join(holders)}: "
                "remove them first, or use --force"
            )
        lines = [f"Untagged: {reference.parse(n).familiar()}" for n in untag]
        with self._editing_index() as entries:
            kept = []
            for entry in entries:
                ann = entry.get("annotations") or {}
                mine = entry["digest"] == img.manifest_digest
                if not mine or ann.get(spec.REF_NAME) not in (None, *untag):
                    kept.append(entry)
                elif (
                    holders
                    and not remaining
                    and not any(e["digest"] == img.manifest_digest for e in kept)
                ):
                    # a container still uses it: keep it, dangling, as docker does
                    dangling = {k: v for k, v in ann.items() if k != spec.REF_NAME}
                    kept.append({**entry, "annotations": dangling})
            entries[:] = kept
        if not remaining and not holders:
            lines.append(f"Deleted: {img.id}")
            self.collect()
        return lines

    def prune(self, *, all_unused: bool = False) -> tuple[list[str], int]:
        """Remove dangling images (no name), or with all_unused every image no container uses.
        Returns (deleted image ids, bytes reclaimed)."""
        deleted = []
        with self._editing_index() as entries:
            images = {e["digest"] for e in entries}
            named = {
                e["digest"] for e in entries if (e.get("annotations") or {}).get(spec.REF_NAME)
            }
            kept = []
            for entry in entries:
                digest = entry["digest"]
                try:
                    image_id = self.read_json(digest)["config"]["digest"]
                except (ImageError, KeyError, TypeError):
                    image_id = None
                unused = image_id is None or not self.holders(image_id)
                if unused and (all_unused or digest not in named):
                    if image_id and image_id not in deleted:
                        deleted.append(image_id)
                    continue
                kept.append(entry)
            entries[:] = kept
            del images
        reclaimed = self.collect()
        return deleted, reclaimed

    def _live(self) -> tuple[set[str], set[str]]:
        """(blob hexes, layer hexes) reachable from index.json and from snapshots."""
        blobs: set[str] = set()
        layers: set[str] = set()

        def keep_manifest(digest: str) -> None:
            blobs.add(hex_of(digest))
            try:
                manifest = self.read_json(digest)
                blobs.add(hex_of(manifest["config"]["digest"]))
                config = self.read_json(manifest["config"]["digest"])
            except (ImageError, KeyError, TypeError):
                return
            for layer in manifest.get("layers", []):
                blobs.add(hex_of(layer["digest"]))
            for diff in config.get("rootfs", {}).get("diff_ids", []):
                layers.add(hex_of(diff))

        for entry in self._index()["manifests"]:
            keep_manifest(entry["digest"])
        for snap in _listdir(self.snapshots_dir):
            try:
                with open(os.path.join(self.snapshots_dir, snap, "manifest")) as f:
                    keep_manifest(f.read().strip())
            except (FileNotFoundError, NotADirectoryError):
                continue
        return blobs, layers

    def collect(self) -> int:
        """Delete blobs and layers nothing refers to; skipped (0) while a pull or load runs,
        the next collection finishes the job. Returns bytes reclaimed."""
        with self.lock("gc", wait=False) as got:
            if not got:
                return 0
            blobs, layers = self._live()
            reclaimed = 0
            for name in _listdir(self.blobs):
                if name not in blobs:
                    reclaimed += _size(os.path.join(self.blobs, name))
                    os.unlink(os.path.join(self.blobs, name))
            for name in _listdir(self.layers_dir):
                base = name.removesuffix(".size").split(".", 1)[0]
                if base not in layers:
                    path = os.path.join(self.layers_dir, name)
                    if name.endswith(".size"):
                        os.unlink(path)
                    else:
                        reclaimed += self.layer_size("sha256:" + base) if "." not in name else 0
                        remove_tree(path)
            for name in _listdir(self.ingest_dir):
                path = os.path.join(self.ingest_dir, name)
                os.unlink(path)  # no writer runs while we hold gc exclusively
            return reclaimed

    def fsck(self) -> list[str]:
        """Re-verify every blob's digest and the store's references. Returns problems found
        (empty: the store is sound); corrupt blobs are removed so a pull can fetch them."""
        problems = []
        with self.lock("gc"):
            for name in _listdir(self.blobs):
                path = os.path.join(self.blobs, name)
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                if h.hexdigest() != name:
                    problems.append(
                        f"blob sha256:{name}: content does not match its digest (removed)"
                    )
                    os.unlink(path)
            live_blobs, live_layers = self._live()
            present = set(_listdir(self.blobs))
            for entry in self._index()["manifests"]:
                ann = entry.get("annotations") or {}
                label = ann.get(spec.REF_NAME) or entry["digest"]
                for missing in self._missing(entry["digest"], present):
                    problems.append(f"image {label}: {missing} is missing")
            for name in sorted(present - live_blobs):
                problems.append(f"blob sha256:{name}: orphan (no image refers to it)")
            for name in _listdir(self.layers_dir):
                base = name.removesuffix(".size")
                if "." in base:
                    problems.append(f"layer {name}: left over from an interrupted unpack")
                elif base not in live_layers:
                    problems.append(f"layer sha256:{base}: orphan (no image refers to it)")
            for name in _listdir(self.ingest_dir):
                problems.append(f"ingest/{name}: partial download (resumed by the next pull)")
        return problems

    def _missing(self, manifest_digest: str, present: set[str]) -> list[str]:
        if hex_of(manifest_digest) not in present:
            return [f"manifest {manifest_digest}"]
        out = []
        manifest = self.read_json(manifest_digest)
        config_digest = manifest["config"]["digest"]
        if hex_of(config_digest) not in present:
            return [f"config {config_digest}"]
        for layer in manifest["layers"]:
            if hex_of(layer["digest"]) not in present:
                out.append(f"layer blob {layer['digest']}")
        for diff in self.read_json(config_digest)["rootfs"]["diff_ids"]:
            if not self.has_layer(diff):
                out.append(f"unpacked layer {diff}")
        return out


class Ingest:
    """The writer of one blob: appends to ingest/<hex>.partial, then verifies and renames.
    A partial file left by a killed writer is resumed from where it stopped."""

    def __init__(self, store: Store, digest: str, size: int | None) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        self.partial = os.path.join(store.ingest_dir, f"{hex_of(digest)}.partial")
        self.hash = hashlib.sha256()
        self.hash_count = 0
        self._out: BinaryIO | None = None

    @property
    def done(self) -> bool:
        return self.store.has_blob(self.digest)

    def resume(self) -> Iterator[bytes]:
        """The bytes already downloaded (hashed as they go); then write() the rest."""
        try:
            f = open(self.partial, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        with f:
            while chunk := f.read(_CHUNK):
                if self.size is not None and self.hash_count + len(chunk) > self.size:
                    break  # a partial longer than the blob: bogus, start over
                self.hash.update(chunk)
                self.hash_count += len(chunk)
                yield chunk

    def restart(self) -> None:
        """Forget the partial download (the server would not resume it)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)
        self.hash = hashlib.sha256()
        self.hash_count = 0

    def write(self, chunk: bytes) -> None:
        if self._out is None:
            self._out = open(self.partial, "ab")  # noqa: SIM115 - closed in close()
            self._out.truncate(self.hash_count)
        self._out.write(chunk)
        self.hash.update(chunk)
        self.hash_count += len(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def commit(self) -> None:
        """Verify size and digest, then publish the blob. A mismatch deletes the partial."""
        self.close()
        if not os.path.exists(self.partial):
            with open(self.partial, "wb"):
                pass
        got = "sha256:" + self.hash.hexdigest()
        bad = None
        if self.size is not None and self.hash_count != self.size:
            bad = f"blob {self.digest}: got {self.hash_count} bytes, expected {self.size}"
        elif got != self.digest:
            bad = f"blob {self.digest}: content has digest {got}"
        if bad:
            os.unlink(self.partial)
            raise DigestMismatch(bad + " (not stored)")
        os.rename(self.partial, self.store.blob_path(self.digest))


def remove_tree(path: str) -> None:
    """rm -rf that also copes with directories made read-only by a layer's modes."""

    def onerror(func: Any, p: str, exc: Any) -> None:
        err = exc[1] if isinstance(exc, tuple) else exc
        if isinstance(err, FileNotFoundError):
            return
        if isinstance(err, PermissionError) or getattr(err, "errno", None) == errno.EACCES:
            parent = os.path.dirname(p)
            os.chmod(parent, 0o700)
            func(p)
            return
        raise err

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)


def _named_elsewhere(entries: list[dict[str, Any]], entry: dict[str, Any], name: str) -> bool:
    return any(
        e is not entry
        and e["digest"] == entry["digest"]
        and (e.get("annotations") or {}).get(spec.REF_NAME) not in (None, name)
        for e in entries
    )


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
