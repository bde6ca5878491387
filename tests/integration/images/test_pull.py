"""Pulls through Corral from a real registry: formats, platforms, verification, the store's
layout (read back by skopeo), concurrency and resume."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from corral.errors import DigestMismatch, ImageError
from corral.image import snapshot
from corral.image.pull import PullOptions, pull
from corral.image.store import Store
from corral.image.unpack import LayerError
from corral.oci.image import ImageFormatError
from tests.images import RegistryServer
from tests.integration.images.conftest import corral


def test_pull_cli_then_images_and_inspect(seeded: RegistryServer, data_root: Path) -> None:
    name = f"{seeded.host}/test/busybox"
    result = corral(data_root, "pull", name)
    assert result.stdout.strip() == f"{name}:latest"
    assert "Pull complete" in result.stderr and "Digest: sha256:" in result.stderr

    table = corral(data_root, "images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:2] == [name, "latest"]

    rows = json.loads(corral(data_root, "images", "--format", "json").stdout)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [(name, "latest")]
    doc = json.loads(corral(data_root, "image", "inspect", name).stdout)[0]
    assert doc["Id"] == rows[0]["ID"] and doc["RepoTags"] == [f"{name}:latest"]
    assert doc["Os"] == "linux" and doc["Config"]["Cmd"] == ["sh"]
    assert len(doc["RootFS"]["Layers"]) == 1 and doc["Size"] > 1_000_000

    # a second pull finds everything in place
    again = corral(data_root, "pull", name)
    assert "Already exists" in again.stderr


def test_store_is_an_oci_layout_that_skopeo_reads(seeded: RegistryServer, store: Store) -> None:
    img = pull(store, f"{seeded.host}/test/layered")
    out = subprocess.run(
        ["skopeo", "inspect", f"oci:{store.root}:{img.names[0]}"],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["Digest"] == img.manifest_digest
    assert len(doc["Layers"]) == 3


def test_layers_unpacked_in_overlay_form_and_merged_by_a_snapshot(
    seeded: RegistryServer, store: Store
) -> None:
    img = pull(store, f"{seeded.host}/test/layered")
    deletes = Path(store.layer_path(img.diff_ids[1]))
    whiteout = os.lstat(deletes / "etc/a")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(deletes / "d", "trusted.overlay.opaque") == b"y"

    rootfs = Path(snapshot.prepare(store, img, "c1"))
    try:
        assert snapshot.is_mounted(str(rootfs))
        assert not (rootfs / "etc/a").exists()  # whiteout
        assert sorted(os.listdir(rootfs / "d")) == ["z"]  # opaque dir
        assert (rootfs / "etc/b").read_bytes() == b"b changed"
        assert os.stat(rootfs / "etc/b-hard").st_ino == os.stat(rootfs / "etc/b").st_ino
        assert os.readlink(rootfs / "etc/c-sym") == "c"
        assert os.stat(rootfs / "bin/tool").st_mode & 0o7777 == 0o4755
        (rootfs / "etc/new").write_text("container's own")
        assert not Path(store.layer_path(img.diff_ids[-1]), "etc/new").exists()
        assert (Path(store.snapshots_dir) / "c1/upper/etc/new").exists()
    finally:
        snapshot.remove(store, "c1")
    assert not snapshot.is_mounted(str(rootfs)) and not rootfs.exists()


def test_copy_fallback_gives_the_same_tree(
    seeded: RegistryServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = pull(store, f"{seeded.host}/test/layered")
    monkeypatch.setenv("CORRAL_NO_OVERLAY", "1")
    rootfs = Path(snapshot.prepare(store, img, "copy"))
    try:
        assert not snapshot.is_mounted(str(rootfs))
        assert sorted(os.listdir(rootfs / "etc")) == ["b", "b-hard", "c", "c-sym"]
        assert sorted(os.listdir(rootfs / "d")) == ["z"]
        assert (rootfs / "etc/b").read_bytes() == b"b changed"
    finally:
        snapshot.remove(store, "copy")


@pytest.mark.parametrize("tag", ["zstd", "plain"])
def test_zstd_and_uncompressed_layers(seeded: RegistryServer, store: Store, tag: str) -> None:
    img = pull(store, f"{seeded.host}/test/{tag}")
    for diff in img.diff_ids:
        assert store.has_layer(diff)
    assert (Path(store.layer_path(img.diff_ids[0])) / "etc/b").read_bytes() == b"b from base"


def test_multi_platform_index_picks_the_host_or_the_asked_platform(
    seeded: RegistryServer, store: Store, data_root: Path
) -> None:
    name = f"{seeded.host}/test/multi"
    img = pull(store, name)
    assert (Path(store.layer_path(img.diff_ids[0])) / "arch").read_text() == "amd64"
    assert img.index_digest is not None and img.index_digest != img.manifest_digest
    # the index digest names the image too, as docker's RepoDigests do
    assert store.image(f"{name}@{img.index_digest}").id == img.id

    arm = pull(store, name, options=PullOptions(platform={"os": "linux", "architecture": "arm64"}))
    assert (Path(store.layer_path(arm.diff_ids[0])) / "arch").read_text() == "arm64"

    result = corral(data_root, "pull", "--platform", "linux/s390x", name, check=False)
    assert result.returncode != 0
    assert "no manifest for platform linux/s390x" in result.stderr
    assert "linux/amd64, linux/arm64/v8, linux/arm/v7" in result.stderr


def test_pull_by_digest(seeded: RegistryServer, store: Store) -> None:
    first = pull(store, f"{seeded.host}/test/busybox")
    by_digest = pull(store, f"{seeded.host}/test/busybox@{first.manifest_digest}")
    assert by_digest.id == first.id
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageError, match="not found"):
        pull(store, f"{seeded.host}/test/busybox@{wrong}")


def test_missing_image_and_unreachable_registry_are_named(
    store: Store, seeded: RegistryServer
) -> None:
    with pytest.raises(ImageError, match=r"manifest test/nothing:latest not found"):
        pull(store, f"{seeded.host}/test/nothing")
    with pytest.raises(ImageError, match=r"127.0.0.1:1 cannot be reached"):
        pull(store, "127.0.0.1:1/test/busybox")
    with pytest.raises(ImageError, match="bad name component"):
        pull(store, "127.0.0.1:1/Test/Upper")


def _store_is_empty_of_content(store: Store) -> None:
    assert os.listdir(store.layers_dir) == []
    assert os.listdir(store.ingest_dir) == []


def test_tampered_blob_is_rejected_and_not_stored(seeded: RegistryServer, tmp_path: Path) -> None:
    """Flip bytes of a layer inside the registry's own storage: the pull fails naming the
    blob, and neither the blob nor the layer appears in the store."""
    from tests.images import Layout, registry, tar_of

    layout = Layout(tmp_path / "layout")
    layout.tag(layout.manifest([tar_of([("f", b"original " * 1000, {})])]), "t")
    with registry(tmp_path / "reg") as server:
        server.push(layout.root, "t", "test/tampered:latest")
        manifest = json.loads(
            (layout.root / "blobs/sha256" / layout.index[0]["digest"][7:]).read_text()
        )
        layer = manifest["layers"][0]
        data = server.blob_file(layer["digest"])
        blob = bytearray(data.read_bytes())
        blob[-12] ^= 0xFF  # the gzip trailer's CRC: inflates, hashes wrong
        data.write_bytes(bytes(blob))
        st = Store(str(tmp_path / "store"))
        with pytest.raises((DigestMismatch, LayerError)):
            pull(st, f"{server.host}/test/tampered")
        assert not st.has_blob(layer["digest"])
        _store_is_empty_of_content(st)
        assert st.images() == []


def test_hostile_layer_is_rejected_and_nothing_escapes(
    seeded: RegistryServer, store: Store
) -> None:
    outside = Path(store.root).parent / "escaped-by-layer"
    with pytest.raises(LayerError, match=r"'\.\./\.\./escaped-by-layer' contains '\.\.'"):
        pull(store, f"{seeded.host}/test/escape")
    assert not outside.exists() and not Path("/escaped-by-layer").exists()
    _store_is_empty_of_content(store)
    assert store.images() == []


def test_images_sharing_a_layer_store_it_once(seeded: RegistryServer, store: Store) -> None:
    a = pull(store, f"{seeded.host}/test/layered")
    before = len(seeded.blob_gets(a.layers[0]["digest"]))
    b = pull(store, f"{seeded.host}/test/shares-base")
    assert b.layers[0]["digest"] == a.layers[0]["digest"]
    assert len(seeded.blob_gets(a.layers[0]["digest"])) == before  # not fetched again


def test_concurrent_pulls_download_each_blob_once(seeded: RegistryServer, data_root: Path) -> None:
    """Four processes pull the same image (24 MiB layer) into one store at once."""
    name = f"{seeded.host}/test/big"
    Store(str(data_root / "image"))  # initialise before the race, as any first command would
    digest = None
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corral.cli.main",
                "--data-root",
                str(data_root),
                "pull",
                "-q",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    st = Store(str(data_root / "image"))
    img = st.image(name)
    digest = img.layers[0]["digest"]
    gets = [line for line in seeded.blob_gets(digest) if '" 200 ' in line or '" 206 ' in line]
    fetched_by_us = [line for line in gets if "corral" in line]
    assert len(fetched_by_us) == 1, gets
    assert st.fsck() == []


def test_partial_download_is_resumed_with_a_range_request(
    seeded: RegistryServer, store: Store
) -> None:
    """A partial blob left by a killed pull: the next pull sends Range and finishes it."""
    name = f"{seeded.host}/test/big"
    layout = json.loads(seeded_layout_blob(seeded, "big"))
    layer = layout["layers"][0]
    blob = seeded.blob_file(layer["digest"]).read_bytes()
    partial = Path(store.ingest_dir) / f"{layer['digest'][7:]}.partial"
    partial.write_bytes(blob[: len(blob) // 2])
    img = pull(store, name)
    assert store.has_blob(layer["digest"]) and store.has_layer(img.diff_ids[0])
    assert any('" 206 ' in line for line in seeded.blob_gets(layer["digest"]))
    assert not partial.exists()


def seeded_layout_blob(seeded: RegistryServer, tag: str) -> str:
    from tests.integration.images.conftest import F

    layout = F["layout"]
    digest = next(
        e["digest"]
        for e in layout.index
        if e["annotations"]["org.opencontainers.image.ref.name"] == tag
    )
    return (layout.root / "blobs/sha256" / digest[7:]).read_text()


def test_corrupt_partial_is_discarded_not_trusted(seeded: RegistryServer, store: Store) -> None:
    layout = json.loads(seeded_layout_blob(seeded, "big"))
    layer = layout["layers"][0]
    partial = Path(store.ingest_dir) / f"{layer['digest'][7:]}.partial"
    partial.write_bytes(b"garbage that is not the blob's beginning" * 1000)
    with pytest.raises((DigestMismatch, LayerError)):
        pull(store, f"{seeded.host}/test/big")
    assert not partial.exists()  # thrown away: the next pull starts clean
    img = pull(store, f"{seeded.host}/test/big")
    assert store.has_layer(img.diff_ids[0])


def test_bad_platform_string(seeded: RegistryServer, data_root: Path) -> None:
    result = corral(
        data_root, "pull", "--platform", "amd64", f"{seeded.host}/test/multi", check=False
    )
    assert result.returncode != 0 and "expected os/arch[/variant]" in result.stderr
    assert ImageFormatError.__name__  # raised through the CLI as a clear error


def test_dropped_connection_mid_blob_is_resumed(seeded: RegistryServer, store: Store) -> None:
    from tests.images import CuttingProxy

    proxy = CuttingProxy(seeded.port, cut_after=4 << 20)
    try:
        img = pull(store, f"{proxy.host}/test/big")
    finally:
        proxy.stop()
    assert proxy.cuts == 1
    assert store.has_layer(img.diff_ids[0])
    assert any('" 206 ' in line for line in seeded.blob_gets(img.layers[0]["digest"]))


def test_docker_schema2_manifests(seeded: RegistryServer, store: Store) -> None:
    """skopeo --format v2s2 converts to Docker's media types on the way in."""
    from tests.integration.images.conftest import F

    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            f"oci:{F['layout'].root}:layered",
            f"docker://{seeded.host}/test/v2s2:latest",
        ],
        check=True,
        capture_output=True,
    )
    img = pull(store, f"{seeded.host}/test/v2s2")
    assert img.manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert img.layers[0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert len(img.diff_ids) == 3 and all(store.has_layer(d) for d in img.diff_ids)


def test_history(seeded: RegistryServer, data_root: Path) -> None:
    name = f"{seeded.host}/test/layered"
    corral(data_root, "pull", "-q", name)
    lines = corral(data_root, "image", "history", name).stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert [line.split()[-2] if "layer" in line else None for line in lines[1:]]
    rows = json.loads(corral(data_root, "image", "history", "--format", "json", name).stdout)
    assert [r["CreatedBy"] for r in rows] == ["layer 2", "layer 1", "layer 0"]  # newest first
    assert all(r["Size"] > 0 for r in rows)


def test_progress_bars_on_a_terminal(seeded: RegistryServer, data_root: Path) -> None:
    """Under a pty: bars redrawn in place (cursor movement), not a line per state."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "corral.cli.main",
                "--data-root",
                str(data_root),
                "pull",
                f"{seeded.host}/test/big",
            ],
        )
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"\x1b[" in out and b"Downloading [" in out and b"Pull complete" in out
