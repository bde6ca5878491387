"""The store's life cycle: tag, rmi, holds, prune, fsck; load and save against real peers
(skopeo reads what Corral writes and the other way round); kill -9 at many points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.errors import ImageInUse, ImageNotFound
from corral.image import snapshot
from corral.image.pull import pull
from corral.image.store import Store
from tests.images import RegistryServer
from tests.integration.images.conftest import corral


def test_tag_rmi_and_dangling(seeded: RegistryServer, store: Store, data_root: Path) -> None:
    name = f"{seeded.host}/test/busybox:latest"
    img = pull(store, name)
    corral(data_root, "tag", name, "mine/busybox:v1")
    assert sorted(store.image(img.short_id).names) == sorted([name, "docker.io/mine/busybox:v1"])
    by_id = corral(data_root, "rmi", img.short_id, check=False)
    assert by_id.returncode != 0 and "referenced by several names" in by_id.stderr

    out = corral(data_root, "rmi", "mine/busybox:v1").stdout
    assert out.strip() == "Untagged: mine/busybox:v1"
    assert store.has_blob(img.layers[0]["digest"])  # still named by the first tag
    out = corral(data_root, "rmi", name).stdout.splitlines()
    assert out == [f"Untagged: {name}", f"Deleted: {img.id}"]
    assert os.listdir(store.blobs) == [] and os.listdir(store.layers_dir) == []
    missing = corral(data_root, "rmi", name, check=False)
    assert missing.returncode == 1 and "no such image" in missing.stderr


def test_image_used_by_a_container_cannot_be_removed(seeded: RegistryServer, store: Store) -> None:
    name = f"{seeded.host}/test/layered:latest"
    img = pull(store, name)
    snapshot.prepare(store, img, "holder")
    with pytest.raises(ImageInUse, match="used by container"):
        store.remove(name)
    # forced: the name goes, the content stays (dangling) while the container lives
    lines = store.remove(name, force=True)
    assert lines == [f"Untagged: {name}"]
    assert store.has_layer(img.diff_ids[0])
    assert [i.id for i in store.images()] == [img.id] and store.images()[0].names == []
    assert store.prune()[0] == []  # prune spares what a container uses
    snapshot.remove(store, "holder")
    deleted, reclaimed = store.prune()
    assert deleted == [img.id] and reclaimed > 0
    assert store.images() == [] and os.listdir(store.layers_dir) == []


def test_retag_leaves_the_old_image_dangling_and_prune_removes_it(
    seeded: RegistryServer, store: Store, data_root: Path
) -> None:
    pull(store, f"{seeded.host}/test/busybox")
    old = store.tag(f"{seeded.host}/test/busybox", "app:current")
    pull(store, f"{seeded.host}/test/layered")
    store.tag(f"{seeded.host}/test/layered", "app:current")  # moves the tag
    store.remove(f"{seeded.host}/test/busybox")  # old image now has no name at all
    table = corral(data_root, "images").stdout
    assert "app" in table
    assert old.id not in [i.id for i in store.images()]


def test_prune_all_and_images_json(seeded: RegistryServer, store: Store, data_root: Path) -> None:
    pull(store, f"{seeded.host}/test/busybox")
    pull(store, f"{seeded.host}/test/plain")
    out = corral(data_root, "image", "prune", "-a", "-f").stdout
    assert out.count("deleted: sha256:") == 2
    assert json.loads(corral(data_root, "images", "--format", "json").stdout) == []
    assert os.listdir(store.blobs) == []


def test_fsck_finds_and_removes_a_corrupt_blob(
    seeded: RegistryServer, store: Store, data_root: Path
) -> None:
    img = pull(store, f"{seeded.host}/test/layered")
    clean = corral(data_root, "image", "fsck")
    assert clean.returncode == 0 and "store is consistent" in clean.stdout
    blob = Path(store.blob_path(img.layers[1]["digest"]))
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    store.put_blob(b"an orphan: no image refers to it")
    bad = corral(data_root, "image", "fsck", check=False)
    assert bad.returncode == 1
    assert f"blob {img.layers[1]['digest']}: content does not match its digest" in bad.stdout
    assert f"layer blob {img.layers[1]['digest']} is missing" in bad.stdout
    # the next pull repairs it
    pull(store, f"{seeded.host}/test/layered")
    orphan = corral(data_root, "image", "fsck")  # orphans are reported, not an error
    assert orphan.returncode == 0 and "orphan (no image refers to it)" in orphan.stdout
    corral(data_root, "image", "fsck", "--repair")
    assert "store is consistent" in corral(data_root, "image", "fsck").stdout


def test_save_load_docker_archive_round_trip_and_skopeo_reads_it(
    seeded: RegistryServer, store: Store, data_root: Path, tmp_path: Path
) -> None:
    name = f"{seeded.host}/test/layered:latest"
    img = pull(store, name)
    archive = tmp_path / "layered.tar"
    corral(data_root, "save", "-o", str(archive), name)
    # a real peer reads Corral's docker-archive
    subprocess.run(
        ["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{tmp_path / 'peer'}:x"],
        check=True,
        capture_output=True,
    )
    corral(data_root, "rmi", name)
    out = corral(data_root, "load", "-i", str(archive)).stdout
    assert out.strip() == f"Loaded image: {name}"
    loaded = store.image(name)
    assert loaded.id == img.id and loaded.diff_ids == img.diff_ids
    assert "store is consistent" in corral(data_root, "image", "fsck").stdout


def test_load_what_skopeo_writes_docker_and_oci_archives(
    seeded: RegistryServer, data_root: Path, tmp_path: Path
) -> None:
    """docker-archive from the gzip image (skopeo 1.9 writes no zstd there), OCI archive
    from the one with a zstd layer."""
    dock, oci = tmp_path / "d.tar", tmp_path / "o.tar"
    skopeo_copy(f"docker://{seeded.host}/test/layered:latest", f"docker-archive:{dock}:peer/img:d")
    skopeo_copy(f"docker://{seeded.host}/test/zstd:latest", f"oci-archive:{oci}:peer/img:o")
    assert corral(data_root, "load", "-i", str(dock)).stdout.strip() == "Loaded image: peer/img:d"
    with open(oci, "rb") as f:
        out = corral(data_root, "load", stdin=f).stdout
    assert out.strip() == "Loaded image: peer/img:o"
    st = Store(str(data_root / "image"))
    assert st.image("peer/img:d").diff_ids[:2] == st.image("peer/img:o").diff_ids


def skopeo_copy(src: str, dest: str) -> None:
    result = subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", src, dest],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_save_oci_archive_then_skopeo_and_gzipped_docker_archive_load(
    seeded: RegistryServer, store: Store, data_root: Path, tmp_path: Path
) -> None:
    name = f"{seeded.host}/test/busybox:latest"
    pull(store, name)
    oci = tmp_path / "bb.oci.tar"
    corral(data_root, "save", "--format", "oci-archive", "-o", str(oci), name)
    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{oci}:{name}"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(inspected.stdout)["Digest"] == store.image(name).manifest_digest
    gz = tmp_path / "bb.tar.gz"
    with open(gz, "wb") as out:
        save = subprocess.Popen(
            [sys.executable, "-m", "corral.cli.main", "--data-root", str(data_root), "save", name],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["gzip", "-1"], stdin=save.stdout, stdout=out, check=True)
        assert save.wait() == 0
    other = tmp_path / "other"
    assert corral(other, "load", "-i", str(gz)).stdout.strip() == f"Loaded image: {name}"


def test_bad_archives_are_named(data_root: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    result = corral(data_root, "load", "-i", str(junk), check=False)
    assert result.returncode == 1 and "not an image archive" in result.stderr
    with pytest.raises(ImageNotFound):
        Store(str(data_root / "image")).image("nothing:here")


def test_kill_9_at_any_point_leaves_a_consistent_store(
    seeded: RegistryServer, data_root: Path
) -> None:
    """Kill pulls of a two-image mix at staggered moments; after each kill the store is
    consistent (fsck finds nothing worse than a resumable partial), and a final pull
    completes the work."""
    names = [f"{seeded.host}/test/big", f"{seeded.host}/test/layered"]
    cmd = [sys.executable, "-m", "corral.cli.main", "--data-root", str(data_root), "pull", "-q"]
    Store(str(data_root / "image"))
    for delay in (0.05, 0.15, 0.25, 0.35, 0.5, 0.8):
        procs = [
            subprocess.Popen([*cmd, n], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n in names
        ]
        time.sleep(delay)
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
        st = Store(str(data_root / "image"))
        serious = [
            p
            for p in st.fsck()
            if "partial download" not in p and "orphan" not in p and "interrupted unpack" not in p
        ]
        assert serious == [], (delay, serious)
        for img in st.images():  # whatever is listed is complete
            assert all(st.has_layer(d) for d in img.diff_ids)
        if os.path.exists(Path(st.root, "index.json.tmp")):
            raise AssertionError("index.json left half-written")
    for n in names:
        corral(data_root, "pull", "-q", n)
    st = Store(str(data_root / "image"))
    assert not [p for p in st.fsck() if "orphan" not in p]
    st.collect()
    assert st.fsck() == []
