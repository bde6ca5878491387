"""Container start: create + start + wait + delete of busybox /bin/true, side by side.

    sudo .venv/bin/python bench/runtime_start.py [--runs 30] [--runtimes corral,runc,crun]

For each runtime, in one run: the median (and p90) of the whole cycle, the ratio to
corral-runtime, and the memory (RSS and PSS) of a created-but-not-started container's
waiting process. crun runs in a private mount namespace where /sys/fs/cgroup/unified is
unmounted (crun cannot handle this host's hybrid layout otherwise); the host is untouched.
The benchmark is a child subreaper, so it waits for each container's init directly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import smaps
from tests.bundles import make_bundle, write_spec

from corral.kernel import mount as kmount
from corral.kernel import namespaces, prctl

CORRAL = str(Path(sys.executable).parent / "corral-runtime")
PARENT = f"corral-bench-{os.getpid()}"


def cycle(
    binary: str, root: str, bundle: Path, cid: str, measure_memory: bool
) -> tuple[float, tuple[int, int] | None]:
    pid_file = bundle / "pid"
    out = subprocess.DEVNULL
    spec = json.loads((bundle / "config.json").read_text())
    spec["linux"]["cgroupsPath"] = f"{PARENT}/{cid}"  # a fresh group per cycle, as callers do
    (bundle / "config.json").write_text(json.dumps(spec))
    t0 = time.perf_counter()
    # stderr to a file, not a pipe: the container's init keeps its stdio open after create.
    with tempfile.TemporaryFile() as err:
        created = subprocess.run(
            [
                binary,
                "--root",
                root,
                "create",
                "--bundle",
                str(bundle),
                "--pid-file",
                str(pid_file),
                cid,
            ],
            stdout=out,
            stderr=err,
        )
        if created.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cid}: create failed: {err.read().decode().strip()}")
    pid = int(pid_file.read_text())
    mem = None
    if measure_memory:
        t_pause = time.perf_counter()
        mem = smaps(pid)
        t0 += time.perf_counter() - t_pause  # not part of the cycle
    subprocess.run([binary, "--root", root, "start", cid], stdout=out, stderr=out, check=True)
    os.waitpid(pid, 0)  # we are a subreaper: init is our child once create has exited
    subprocess.run([binary, "--root", root, "delete", cid], stdout=out, stderr=out, check=True)
    return time.perf_counter() - t0, mem


def bench_one(name: str, binary: str, runs: int, workdir: Path, result_fd: int) -> None:
    """Runs in a child process (crun needs its own mount namespace)."""
    prctl.set_child_subreaper(True)
    if name == "crun":
        namespaces.unshare(namespaces.CLONE_NEWNS)
        kmount.mount(None, "/", None, kmount.MS_REC | kmount.MS_PRIVATE)
        if os.path.ismount("/sys/fs/cgroup/unified"):
            kmount.umount2("/sys/fs/cgroup/unified", kmount.MNT_DETACH)
    bundle = workdir / name
    spec = make_bundle(bundle, ["/bin/true"])
    spec["process"]["rlimits"] = []  # runc and crun fail on rlimits above the hard limit here
    spec["ociVersion"] = "1.0.2"  # Debian's crun 1.8 refuses newer spec versions
    write_spec(bundle, spec)
    root = str(workdir / f"root-{name}")
    times: list[float] = []
    mems: list[tuple[int, int]] = []
    for i in range(runs + 2):  # two warm-ups
        elapsed, mem = cycle(binary, root, bundle, f"{name}{i}", measure_memory=(i == 1))
        if mem:
            mems.append(mem)
        if i >= 2:
            times.append(elapsed)
    os.write(result_fd, json.dumps({"times": times, "mem": mems[0] if mems else None}).encode())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--runtimes", default="corral,runc,crun")
    args = ap.parse_args()
    binaries = {"corral": CORRAL, "runc": shutil.which("runc"), "crun": shutil.which("crun")}
    workdir = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    results: dict[str, dict[str, object]] = {}
    try:
        for name in args.runtimes.split(","):
            binary = binaries.get(name)
            if not binary:
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    bench_one(name, binary, args.runs, workdir, w)
                    os._exit(0)
                except BaseException as err:
                    print(f"{name}: {err}", file=sys.stderr)
                    os._exit(1)
            os.close(w)
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            os.close(r)
            _, status = os.waitpid(pid, 0)
            if status == 0 and data:
                results[name] = json.loads(data)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for base in Path("/sys/fs/cgroup").glob("*"):
            for d in sorted(base.rglob(PARENT), reverse=True):
                for sub in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True):
                    sub.rmdir()
                d.rmdir()
    base = statistics.median(results["corral"]["times"]) if "corral" in results else None  # type: ignore[arg-type]
    print(f"create+start+wait+delete of busybox /bin/true, {args.runs} runs each (median, p90)")
    print(f"{'runtime':<8} {'median':>9} {'p90':>9} {'vs corral':>10} {'RSS':>9} {'PSS':>9}")
    for name, r in results.items():
        times = sorted(r["times"])  # type: ignore[arg-type]
        med = statistics.median(times)
        p90 = times[int(len(times) * 0.9) - 1]
        ratio = f"{med / base:.2f}x" if base else "-"
        rss, pss = r["mem"] or (0, 0)  # type: ignore[misc]
        cells = f"{med * 1000:>7.1f}ms {p90 * 1000:>7.1f}ms {ratio:>10}"
        print(f"{name:<8} {cells} {rss / 1024:>7.1f}MB {pss / 1024:>7.1f}MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
