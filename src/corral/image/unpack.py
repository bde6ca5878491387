"""Unpacking an image layer (a tar stream) safely.

Python's tarfile parses headers well but must not extract untrusted archives (not even with
its `data` filter on 3.11.7), so Corral walks the entries itself:
- every path is normalised and must stay inside the layer: no absolute paths, no `..`;
- parents are opened one component at a time with O_NOFOLLOW|O_DIRECTORY from a directory
  fd, so a symlink planted by an earlier entry (or a lower layer) is never followed;
- files are created with O_EXCL|O_NOFOLLOW after removing what was there, so nothing is
  written *through* an existing symlink or hardlink;
- hard links must name an entry already inside the layer;
- the bytes and entries a layer may expand to are bounded (a small gzip can inflate to GiB).
Whiteouts are written in overlay form (a 0:0 char device, `trusted.overlay.opaque`) for
per-layer directories, or applied (deleting) when unpacking onto one plain directory.
The layer is unpacked into a temporary directory and renamed into place: a failed or
killed unpack never leaves a half layer under the final name.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from corral.errors import ImageError
from corral.image.compression import decompressed, is_corrupt_stream
from corral.structs import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
DEFAULT_MAX_BYTES = 32 << 30
DEFAULT_MAX_ENTRIES = 2_000_000
_CHUNK = 1 << 20


class LayerError(ImageError):
    """A layer that is malformed, unsafe, or too large."""


@record
class UnpackStats:
    entries: int = 0
    bytes: int = 0
    skipped_devices: int = 0


def normalise(name: str) -> str:
    """'./usr//bin/' -> 'usr/bin'; refuses absolute paths and '..' anywhere."""
    if name.startswith("/"):
        raise LayerError(f"layer entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer entry {name!r} contains '..': it would leave the layer")
    return "/".join(parts)


class _Tree:
    """Operations relative to the layer's root directory fd, never following symlinks."""

    def __init__(self, root: str) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.root_fd)

    def parent(self, path: str, entry: str, create: bool = True) -> tuple[int, str]:
        """(fd of the parent directory, last component). The caller closes the fd."""
        parts = path.split("/")
        fd = os.dup(self.root_fd)
        try:
            for part in parts[:-1]:
                try:
                    nfd = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nfd = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise LayerError(
                            f"layer entry {entry!r}: {part!r} on its path is not a directory "
                            "(a symlink is never followed)"
                        ) from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def remove(self, dir_fd: int, name: str) -> None:
        """Remove whatever `name` is (a directory recursively), without following links."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
            try:
                for child in os.listdir(sub):
                    self.remove(sub, child)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)


def unpack_layer(
    stream: BinaryIO,
    dest: str,
    *,
    overlay: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> UnpackStats:
    """Unpack a tar stream (plain, gzip or zstd) into `dest`.

    overlay=True: `dest` becomes one layer of an overlay stack (whiteouts written in
    overlay's form); False: entries are applied onto the existing tree in `dest`.
    Unpacks into a temporary sibling and renames it to `dest` when dest does not exist.
    """
    final = dest
    fresh = not os.path.exists(dest)
    work = f"{dest}.unpacking-{os.getpid()}" if fresh else dest
    if fresh:
        os.makedirs(work, 0o755)
    try:
        stats = unpack_tar(decompressed(stream), work, overlay, max_bytes, max_entries, fresh=fresh)
    except BaseException:
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if fresh:
        os.rename(work, final)
    return stats


def unpack_tar(
    stream: BinaryIO,
    root: str,
    overlay: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    *,
    fresh: bool = False,
) -> UnpackStats:
    """Unpack an uncompressed tar stream into the existing directory `root`.

    fresh=True promises that `root` is empty: then new files and symlinks are created by a
    few worker threads while this one reads on (see _Leaves)."""
    stats = UnpackStats()
    tree = _Tree(root)
    dir_times: list[tuple[str, int]] = []
    leaves = _Leaves(tree) if fresh else None
    try:
        try:
            archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - `with` below
        except tarfile.TarError as err:
            raise LayerError(f"not a tar layer: {err}") from err
        with archive:
            for member in archive:
                stats.entries += 1
                if stats.entries > max_entries:
                    raise LayerError(f"layer has more than {max_entries} entries")
                path = normalise(member.name)
                if not path:
                    continue  # the root itself
                if leaves is not None and leaves.take(archive, member, path, stats, max_bytes):
                    continue
                _entry(tree, archive, member, path, overlay, stats, max_bytes, dir_times)
        if leaves is not None:
            leaves.finish()
        # Directory mtimes last: adding entries changed them.
        for path, mtime in reversed(dir_times):
            fd, name = tree.parent(path, path, create=False)
            try:
                os.utime(name, ns=(mtime, mtime), dir_fd=fd, follow_symlinks=False)
            finally:
                os.close(fd)
    except tarfile.TarError as err:
        raise LayerError(f"corrupt layer: {err}") from err
    except Exception as err:
        if is_corrupt_stream(err):
            raise LayerError(f"corrupt layer: {err}") from err
        raise
    finally:
        if leaves is not None:
            leaves.abandon()
        tree.close()
    return stats


class _Leaves:
    """Creates new regular files and symlinks on worker threads.

    Creating an inode costs far more than parsing its tar header (on some hosts ~0.5 ms of
    kernel time each), and the kernel does it in parallel, so a layer of many small files
    unpacks faster when the creations overlap. Only entries whose outcome cannot depend on
    order are handed out: into a fresh layer, a path not seen before, not a whiteout, a
    small file (its bytes are read here, from the sequential stream). Anything else — a
    directory, a hard link, a path seen before, a path below a pending leaf — first waits
    for every pending creation, so the result is exactly that of the sequential walk.
    """

    WORKERS = 3
    SMALL = 1 << 20
    IN_FLIGHT = 256

    def __init__(self, tree: _Tree) -> None:
        self.tree = tree
        self.seen: set[str] = set()
        self.pending: set[str] = set()
        self.futures: list[Future[None]] = []
        self.slots = threading.BoundedSemaphore(self.IN_FLIGHT)
        self.pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="unpack")

    def take(
        self,
        archive: tarfile.TarFile,
        m: tarfile.TarInfo,
        path: str,
        stats: UnpackStats,
        max_bytes: int,
    ) -> bool:
        """Handle `m` on a worker if that is safe; False: the caller handles it (in order)."""
        base = path.rsplit("/", 1)[-1]
        simple = (m.isreg() and m.size <= self.SMALL) or m.issym()
        if not simple or path in self.seen or base.startswith(WHITEOUT_PREFIX):
            self.finish()
            self.seen.add(path)
            return False
        if self.pending and self._below_pending(path):
            self.finish()
        self.seen.add(path)
        data = b""
        if m.isreg():
            stats.bytes += m.size
            if stats.bytes > max_bytes:
                raise LayerError(f"layer expands to more than {max_bytes} bytes")
            src = archive.extractfile(m)
            assert src is not None
            data = src.read()
        fd, name = self.tree.parent(path, m.name)
        self.slots.acquire()
        self.pending.add(path)
        self.futures.append(self.pool.submit(self._create, fd, name, m, data))
        return True

    def _below_pending(self, path: str) -> bool:
        parts = path.split("/")
        return any("/".join(parts[:i]) in self.pending for i in range(1, len(parts)))

    def _create(self, fd: int, name: str, m: tarfile.TarInfo, data: bytes) -> None:
        try:
            if m.issym():
                os.symlink(m.linkname, name, dir_fd=fd)
            else:
                out = _create_new(name, fd)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view) :]
                finally:
                    os.close(out)
            _attributes(fd, name, m)
        finally:
            os.close(fd)
            self.slots.release()

    def finish(self) -> None:
        """Wait for every pending creation; raise the first failure."""
        futures, self.futures = self.futures, []
        self.pending.clear()
        for future in futures:
            future.result()

    def abandon(self) -> None:
        """Let queued creations run out (each closes its fd), then stop the workers."""
        self.pool.shutdown(wait=True)


def _entry(
    tree: _Tree,
    archive: tarfile.TarFile,
    m: tarfile.TarInfo,
    path: str,
    overlay: bool,
    stats: UnpackStats,
    max_bytes: int,
    dir_times: list[tuple[str, int]],
) -> None:
    base = path.rsplit("/", 1)[-1]
    fd, name = tree.parent(path, m.name)
    try:
        if base == OPAQUE_MARKER:
            if overlay:
                os.setxattr(fd, "trusted.overlay.opaque", b"y")
            else:
                for child in os.listdir(fd):
                    tree.remove(fd, child)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX) :]
            if not hidden or hidden in (".", ".."):
                raise LayerError(f"layer entry {m.name!r}: malformed whiteout")
            tree.remove(fd, hidden)
            if overlay:
                os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=fd)
            return
        if m.isdir():
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    tree.remove(fd, name)
                    os.mkdir(name, 0o700, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(name, 0o700, dir_fd=fd)
            _attributes(fd, name, m)
            dir_times.append((path, int(m.mtime * 1e9)))
            return
        tree.remove(fd, name)
        if m.isreg():
            stats.bytes += m.size
            if stats.bytes > max_bytes:
                raise LayerError(f"layer expands to more than {max_bytes} bytes")
            out = _create_new(name, fd)
            try:
                src = archive.extractfile(m)
                assert src is not None
                while chunk := src.read(_CHUNK):
                    os.write(out, chunk)
            finally:
                os.close(out)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=fd)  # never followed by anything below
        elif m.islnk():
            target = normalise(m.linkname)
            if not target:
                raise LayerError(f"layer entry {m.name!r}: hard link to the layer's root")
            try:
                tfd, tname = tree.parent(target, m.name, create=False)
            except FileNotFoundError:
                raise LayerError(
                    f"layer entry {m.name!r}: hard link target {m.linkname!r} is not in the layer"
                ) from None
            try:
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(
                    f"layer entry {m.name!r}: hard link target {m.linkname!r} is not in the layer"
                ) from None
            finally:
                os.close(tfd)
            return  # a hard link shares its target's attributes
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=fd)
            except PermissionError:
                stats.skipped_devices += 1  # no CAP_MKNOD (a user namespace): runc does the same
                return
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=fd)
        else:
            raise LayerError(f"layer entry {m.name!r}: unsupported type {m.type!r}")
        _attributes(fd, name, m)
    finally:
        os.close(fd)


def _create_new(name: str, dir_fd: int) -> int:
    """A new file, never an existing one and never through a symlink (mode set later)."""
    return os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )


def _attributes(dir_fd: int, name: str, m: tarfile.TarInfo) -> None:
    """Owner, then mode (chown clears setuid bits), xattrs, mtime; symlinks: owner and time."""
    os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
    if not m.issym():
        os.chmod(name, m.mode & 0o7777, dir_fd=dir_fd)
        xattrs = {
            k[len("SCHILY.xattr.") :]: v
            for k, v in m.pax_headers.items()
            if k.startswith("SCHILY.xattr.")
        }
        if xattrs and (m.isreg() or m.isdir()):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                for key, value in xattrs.items():
                    os.setxattr(fd, key, value.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)
    if not m.isdir():
        mtime = int(m.mtime * 1e9)
        os.utime(name, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
