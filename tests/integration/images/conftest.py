"""A real registry (Debian's docker-registry on 127.0.0.1) seeded once per session with
test images pushed by skopeo, and a fresh image store per test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.image.store import Store
from tests.bundles import busybox_rootfs
from tests.conftest import corral_cmd
from tests.images import Layout, RegistryServer, registry, tar_of, tar_of_dir

F: dict[str, Any] = {}  # no extra TarInfo attributes

# The layered image: base, then a layer that deletes and makes a directory opaque, then one
# with links. What the merged view must show is asserted in the tests.
BASE = tar_of(
    [
        ("etc", None, {}),
        ("etc/a", b"a from base", {}),
        ("etc/b", b"b from base", {}),
        ("d", None, {}),
        ("d/x", b"x", {}),
        ("d/y", b"y", {}),
        ("bin", None, {}),
        ("bin/tool", b"#!/bin/sh\n", {"mode": 0o4755}),
    ]
)
DELETES = tar_of(
    [
        ("etc", None, {}),
        ("etc/.wh.a", b"", {}),
        ("d", None, {}),
        ("d/.wh..wh..opq", b"", {}),
        ("d/z", b"z only", {}),
        ("etc/c", b"c new", {}),
    ]
)
LINKS = tar_of(
    [
        ("etc", None, {}),
        ("etc/b", b"b changed", {}),
        ("etc/b-hard", b"", {"type": b"1", "linkname": "etc/b"}),
        ("etc/c-sym", b"", {"type": b"2", "linkname": "c"}),
    ]
)
ESCAPE = tar_of([("ok", b"fine", {}), ("../../escaped-by-layer", b"evil", {})])


def _arch_layer(arch: str) -> bytes:
    return tar_of([("arch", arch.encode(), {})])


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("registry")
    layout = Layout(root / "layout")
    layout.tag(layout.manifest([tar_of_dir(busybox_rootfs())]), "busybox")
    layout.tag(layout.manifest([BASE, DELETES, LINKS]), "layered")
    layout.tag(layout.manifest([BASE, DELETES], compression=["gzip", "zstd"]), "zstd")
    layout.tag(layout.manifest([BASE], compression="none"), "plain")
    layout.tag(layout.manifest([BASE, _arch_layer("shared-base")]), "shares-base")
    per_arch = {
        "linux/amd64": layout.manifest([_arch_layer("amd64")]),
        "linux/arm64/v8": layout.manifest([_arch_layer("arm64")], arch="arm64"),
        "linux/arm/v7": layout.manifest([_arch_layer("armv7")], arch="arm"),
    }
    layout.tag(layout.multi_platform(per_arch), "multi")
    layout.tag(layout.manifest([ESCAPE]), "escape")
    layout.tag(layout.manifest([tar_of([("big", os.urandom(24 << 20), {})])]), "big")
    with registry(root / "server") as server:
        for tag in ("busybox", "layered", "zstd", "plain", "shares-base", "escape", "big"):
            server.push(layout.root, tag, f"test/{tag}:latest")
        server.push(layout.root, "multi", "test/multi:latest", all_platforms=True)
        F["layout"] = layout
        yield server


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_root: Path) -> Iterator[Store]:
    st = Store(str(data_root / "image"))
    yield st
    from corral.image import snapshot

    for snap in snapshot.snapshots(st):
        snapshot.remove(st, snap)


def corral(
    data_root: Path, *args: str, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*corral_cmd(), "--data-root", str(data_root), *args],
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 120),
        **kw,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"corral {' '.join(args)} failed: {result.stderr}")
    return result
