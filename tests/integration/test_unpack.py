"""Layer unpacking: what a layer holds arrives intact, and what a hostile layer tries is
refused with nothing written outside the layer. As root (ownership, device nodes)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from corral.image.unpack import LayerError, unpack_layer


def layer(
    entries: list[tuple[tarfile.TarInfo, bytes | None]], compress: bool = False
) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    data = raw.getvalue()
    return io.BytesIO(gzip.compress(data) if compress else data)


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs: object
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644 if kind == tarfile.REGTYPE else 0o755
    info.mtime = 1_000_000_000
    if data is not None:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def test_everything_a_layer_holds(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    xattr = entry("etc/attr", data=b"x")
    xattr[0].pax_headers = {"SCHILY.xattr.user.corral": "yes"}
    stats = unpack_layer(
        layer(
            [
                entry("./etc", tarfile.DIRTYPE),
                entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", uid=0, gid=0),
                entry("usr/bin/su", data=b"#!", mode=0o4755),
                entry("home/user/file", data=b"mine", uid=1000, gid=1000),
                entry("etc/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
                entry("etc/hard", tarfile.LNKTYPE, linkname="etc/passwd"),
                entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
                entry("run/fifo", tarfile.FIFOTYPE),
                xattr,
            ],
            compress=True,
        ),
        str(dest),
    )
    assert stats.entries == 9
    assert (dest / "etc/passwd").read_text().startswith("root:")
    assert stat.S_IMODE((dest / "usr/bin/su").stat().st_mode) == 0o4755
    assert (dest / "home/user/file").stat().st_uid == 1000
    assert os.readlink(dest / "etc/link") == "/etc/passwd"
    assert (dest / "etc/hard").stat().st_ino == (dest / "etc/passwd").stat().st_ino
    st = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert os.getxattr(dest / "etc/attr", "user.corral") == b"yes"
    assert int((dest / "etc/passwd").stat().st_mtime) == 1_000_000_000
    assert int((dest / "etc").stat().st_mtime) == 1_000_000_000


def test_whiteouts_in_overlay_form(tmp_path: Path) -> None:
    dest = tmp_path / "upper"
    unpack_layer(
        layer(
            [
                entry("etc", tarfile.DIRTYPE),
                entry("etc/.wh.gone", data=b""),
                entry("var/.wh..wh..opq", data=b""),
            ]
        ),
        str(dest),
    )
    st = (dest / "etc/gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"


def test_whiteouts_applied_onto_a_directory(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    (dest / "etc").mkdir(parents=True)
    (dest / "etc/gone").write_text("old")
    (dest / "var/cache").mkdir(parents=True)
    (dest / "var/cache/x").write_text("old")
    unpack_layer(
        layer(
            [
                entry("etc/.wh.gone", data=b""),
                entry("var/.wh..wh..opq", data=b""),
                entry("var/new", data=b"n"),
            ]
        ),
        str(dest),
        overlay=False,
    )
    assert not (dest / "etc/gone").exists()
    assert sorted(os.listdir(dest / "var")) == ["new"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([entry("../escape", data=b"x")], "contains '..'"),
        ([entry("/etc/escape", data=b"x")], "absolute path"),
        ([entry("a/../../escape", data=b"x")], "contains '..'"),
        (
            [entry("ln", tarfile.SYMTYPE, linkname="OUTSIDE"), entry("ln/escape", data=b"x")],
            "is not a directory",
        ),
        ([entry("hard", tarfile.LNKTYPE, linkname="../../etc/passwd")], "contains '..'"),
        ([entry("hard", tarfile.LNKTYPE, linkname="nothing/here")], "not in the layer"),
    ],
)
def test_hostile_layers_are_refused(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    fixed = []
    for info, data in entries:
        if info.linkname == "OUTSIDE":
            info.linkname = str(outside)
        fixed.append((info, data))
    dest = tmp_path / "layers" / "l1"
    dest.parent.mkdir()
    with pytest.raises(LayerError, match=message):
        unpack_layer(layer(fixed), str(dest))
    assert os.listdir(outside) == []
    assert not (tmp_path / "escape").exists()
    assert os.listdir(dest.parent) == []  # no half layer left behind


def test_writing_through_a_planted_symlink_replaces_it(tmp_path: Path) -> None:
    outside = tmp_path / "victim"
    outside.write_text("safe")
    dest = tmp_path / "rootfs"
    dest.mkdir()
    (dest / "file").symlink_to(outside)  # planted by a lower layer
    unpack_layer(layer([entry("file", data=b"overwritten?")]), str(dest), overlay=False)
    assert outside.read_text() == "safe"
    assert (dest / "file").read_bytes() == b"overwritten?" and not (dest / "file").is_symlink()


def test_a_layer_that_expands_too_far_is_refused(tmp_path: Path) -> None:
    bomb = layer([entry("zeros", data=b"\0" * (4 << 20))], compress=True)
    assert len(bomb.getvalue()) < 64 << 10  # small on the wire
    dest = tmp_path / "layer"
    with pytest.raises(LayerError, match="more than"):
        unpack_layer(bomb, str(dest), max_bytes=1 << 20)
    assert not dest.exists() and os.listdir(tmp_path) == []


def test_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="not a tar layer"):
        unpack_layer(io.BytesIO(b"this is not a tar file at all" * 50), str(tmp_path / "x"))
    assert os.listdir(tmp_path) == []


def _many(prefix: str, n: int = 300) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """Enough small files that the parallel creators have work in flight."""
    return [entry(f"{prefix}/f{i}", data=b"%d" % i) for i in range(n)]


def test_parallel_creation_keeps_the_sequential_outcome(tmp_path: Path) -> None:
    """Into a fresh layer small files and symlinks are created on worker threads; the
    entries whose outcome depends on order must still come out as a sequential walk's."""
    entries = [
        entry("d", tarfile.DIRTYPE),
        *_many("d"),
        entry("dup", data=b"first"),
        *_many("d2", 50),
        entry("dup", data=b"second"),  # the same path twice: the last one wins
        entry("target", data=b"linked"),
        entry("hard", tarfile.LNKTYPE, linkname="target"),  # right after its target
        entry("sym", tarfile.SYMTYPE, linkname="target"),
        entry("sym", data=b"replaces the symlink"),
        entry("d/f7", data=b"rewritten"),
    ]
    dest = tmp_path / "layer"
    stats = unpack_layer(layer(entries), str(dest))
    assert stats.entries == len(entries)
    assert (dest / "dup").read_bytes() == b"second"
    assert os.stat(dest / "hard").st_ino == os.stat(dest / "target").st_ino
    assert (
        not (dest / "sym").is_symlink() and (dest / "sym").read_bytes() == b"replaces the symlink"
    )
    assert (dest / "d/f7").read_bytes() == b"rewritten"
    assert (dest / "d/f299").read_bytes() == b"299"
    assert len(os.listdir(dest / "d")) == 300


def test_parallel_creation_never_writes_through_a_pending_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = [
        *_many("busy"),
        entry("ln", tarfile.SYMTYPE, linkname=str(outside)),  # still being created...
        entry("ln/escape", data=b"x"),  # ...when this entry asks for its parent
    ]
    dest = tmp_path / "layers" / "l"
    dest.parent.mkdir()
    with pytest.raises(LayerError, match="is not a directory"):
        unpack_layer(layer(entries), str(dest))
    assert os.listdir(outside) == [] and os.listdir(dest.parent) == []
