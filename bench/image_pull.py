"""Pull + unpack from a local registry, side by side: Corral vs skopeo copy + umoci unpack,
podman pull and ctr pull (containerd), then the time to make a container rootfs.

    sudo .venv/bin/python bench/image_pull.py [--runs 3] [--tools corral,skopeo+umoci,podman,ctr]

Needs debootstrap and the Debian mirror the host uses (the image is made once and cached).
Images: a Debian bookworm made with `debootstrap --variant=minbase` (one gzip layer,
cached in /var/tmp/corral-bench) and the busybox test image, pushed by skopeo into Debian's
docker-registry on 127.0.0.1. Every run starts from an empty store (a fresh root for each
tool; containerd is restarted on a fresh root), so each figure is a full download, inflate
and unpack onto ext4. The page cache is not dropped (that would touch the whole machine);
every tool reads the same warm registry files. Medians, and the ratio of each tool to Corral.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bundles import busybox_rootfs
from tests.images import Layout, registry, tar_of, tar_of_dir

from corral.image import snapshot
from corral.image.store import Store

CACHE = Path("/var/tmp/corral-bench")
WORK = Path(f"/var/tmp/corral-bench/run-{os.getpid()}")
RUN = Path(f"/run/corral-bench-{os.getpid()}")
CORRAL = [sys.executable, "-m", "corral.cli.main"]


def debian_rootfs() -> Path:
    rootfs = CACHE / "debian-rootfs"
    if not (rootfs / "bin").exists() and not shutil.which("debootstrap"):
        raise SystemExit("bench/image_pull.py needs debootstrap (apt-get install debootstrap)")
    if not (rootfs / "bin").exists():
        tmp = CACHE / "debian-rootfs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        print("building the Debian image (debootstrap --variant=minbase bookworm)...", flush=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "bookworm",
                str(tmp),
                "http://deb.debian.org/debian",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tmp.rename(rootfs)
    return rootfs


def tar_gz_of(rootfs: Path, out: Path) -> bytes:
    """GNU tar + gzip -6, as image builders write layers."""
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", "-", "."],
                stdout=subprocess.PIPE,
            )
            subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=f, check=True)
            assert tar.wait() == 0
        tmp.rename(out)
    return out.read_bytes()


def build_layouts(root: Path) -> Layout:
    layout = Layout(root)
    rootfs = debian_rootfs()
    gz = tar_gz_of(rootfs, CACHE / "debian-layer.tar.gz")
    import gzip
    import hashlib
    import json

    raw_digest = "sha256:" + hashlib.sha256(gzip.decompress(gz)).hexdigest()
    ldesc = layout.blob(gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [raw_digest]},
    }
    cdesc = layout.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": [ldesc],
    }
    layout.tag(
        layout.blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"),
        "debian",
    )
    layout.tag(layout.manifest([tar_of_dir(busybox_rootfs())]), "busybox")
    ten = [
        tar_of([(f"layer{i}", None, {}), (f"layer{i}/file", b"x" * 4096, {})]) for i in range(10)
    ]
    layout.tag(layout.manifest([tar_of_dir(busybox_rootfs()), *ten[1:]]), "ten")
    return layout


# ----- the tools -----------------------------------------------------------------------------


def corral_pull(host: str, name: str, run: int) -> float:
    root = WORK / f"corral-{run}"
    t0 = time.perf_counter()
    subprocess.run(
        [*CORRAL, "--data-root", str(root), "pull", "-q", f"{host}/{name}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - t0
    shutil.rmtree(root)
    return took


def skopeo_umoci(host: str, name: str, run: int) -> float:
    layout, bundle = WORK / f"oci-{run}", WORK / f"bundle-{run}"
    t0 = time.perf_counter()
    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--src-tls-verify=false",
            f"docker://{host}/{name}",
            f"oci:{layout}:x",
        ],
        check=True,
    )
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:x", str(bundle)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - t0
    shutil.rmtree(layout)
    shutil.rmtree(bundle)
    return took


def podman_pull(host: str, name: str, run: int) -> float:
    root, runroot = WORK / f"podman-{run}", RUN / f"podman-{run}"
    base = ["podman", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay"]
    t0 = time.perf_counter()
    subprocess.run(
        [*base, "pull", "-q", "--tls-verify=false", f"{host}/{name}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - t0
    subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True)
    _unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)
    return took


class Containerd:
    def __init__(self, run: int) -> None:
        self.dir, self.root = RUN / f"containerd-{run}", WORK / f"containerd-{run}"
        self.dir.mkdir(parents=True)
        sock = self.dir / "containerd.sock"
        (self.dir / "config.toml").write_text(
            "version = 2\n"
            f'root = "{self.root}"\nstate = "{self.dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
            f'[debug]\n  address = "{self.dir / "debug.sock"}"\n'
        )
        self.log = open(self.dir / "log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["containerd", "--config", str(self.dir / "config.toml")],
            stdout=self.log,
            stderr=self.log,
        )
        self.sock = sock
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("containerd did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        for d in (self.dir, self.root):
            _unmount_under(d)
            shutil.rmtree(d, ignore_errors=True)


def ctr_pull(host: str, name: str, run: int) -> float:
    daemon = Containerd(run)
    try:
        t0 = time.perf_counter()
        subprocess.run(
            [
                "ctr",
                "--address",
                str(daemon.sock),
                "-n",
                "bench",
                "images",
                "pull",
                "--plain-http",
                f"{host}/{name}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0
    finally:
        daemon.stop()


def _unmount_under(path: Path) -> None:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted(
        (p for p in points if p.startswith(prefix) or p == prefix[:-1]), reverse=True
    ):
        subprocess.run(["umount", "-l", point], capture_output=True)


TOOLS = {
    "corral": corral_pull,
    "skopeo+umoci": skopeo_umoci,
    "podman": podman_pull,
    "ctr": ctr_pull,
}


def rootfs_times(host: str, runs: int) -> dict[str, float]:
    """Median ms to prepare (and to remove) an overlay rootfs of a pulled image."""
    from corral.image.pull import pull

    store = Store(str(WORK / "rootfs-store" / "image"))
    out = {}
    for name in ("debian", "ten"):
        img = pull(store, f"{host}/bench/{name}:latest")
        prep, rm = [], []
        for i in range(max(runs, 10)):
            t0 = time.perf_counter()
            snapshot.prepare(store, img, f"s{i}")
            t1 = time.perf_counter()
            snapshot.remove(store, f"s{i}")
            prep.append(t1 - t0)
            rm.append(time.perf_counter() - t1)
        out[f"{name} ({len(img.diff_ids)} layer{'s' if len(img.diff_ids) > 1 else ''}) prepare"] = (
            statistics.median(prep)
        )
        out[f"{name} ({len(img.diff_ids)} layer{'s' if len(img.diff_ids) > 1 else ''}) remove"] = (
            statistics.median(rm)
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS))
    args = parser.parse_args()
    tools = args.tools.split(",")
    for tool in tools:
        if tool not in TOOLS:
            parser.error(f"unknown tool {tool!r}")
    WORK.mkdir(parents=True)
    RUN.mkdir(parents=True)
    try:
        layout = build_layouts(WORK / "layout")
        with registry(WORK / "registry") as server:
            for tag in ("debian", "busybox", "ten"):
                server.push(layout.root, tag, f"bench/{tag}:latest")
            size = sum(f.stat().st_size for f in (WORK / "registry").rglob("data")) / 1e6
            print(
                f"registry {server.host}: {size:.0f} MB of blobs; "
                f"{args.runs} runs per tool and image"
            )
            results: dict[tuple[str, str], float] = {}
            for image in ("debian", "busybox"):
                times: dict[str, list[float]] = {t: [] for t in tools}
                for run in range(args.runs):
                    for tool in tools:  # interleaved, so drift hits every tool alike
                        times[tool].append(TOOLS[tool](server.host, f"bench/{image}:latest", run))
                for tool in tools:
                    results[(image, tool)] = statistics.median(times[tool])
            report(results, tools)
            print()
            print("container rootfs from a pulled image (overlay snapshot), median of 10:")
            for what, secs in rootfs_times(server.host, args.runs).items():
                print(f"  {what:<28} {secs * 1000:7.2f} ms")
    finally:
        _unmount_under(WORK)
        shutil.rmtree(WORK, ignore_errors=True)
        shutil.rmtree(RUN, ignore_errors=True)
    return 0


def report(results: dict[tuple[str, str], float], tools: list[str]) -> None:
    print(f"\n{'pull + unpack':<16}" + "".join(f"{t:>14}" for t in tools))
    for image in ("debian", "busybox"):
        base = results[(image, "corral")] if "corral" in tools else None
        row = f"{image:<16}" + "".join(f"{results[(image, t)]:>13.2f}s" for t in tools)
        print(row)
        if base:
            print(
                f"{'  ratio to corral':<16}"
                + "".join(f"{results[(image, t)] / base:>13.2f}x" for t in tools)
            )


if __name__ == "__main__":
    sys.exit(main())
