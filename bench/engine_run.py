"""`corral run` side by side with podman (and docker when a daemon answers), one run:

    sudo .venv/bin/python bench/engine_run.py [--runs 20] [--many 100]

1. `run --rm IMAGE true`: medians (and p90) over --runs, the ratio of each tool to Corral.
2. Memory per idle container: what each engine keeps per running `sleep` container (Corral's
   monitor; podman's conmon; docker's containerd-shim), RSS and PSS from smaps_rollup.
3. --many containers started with `run -d ... sleep 1000`, then all stopped (`stop -t 0`)
   and removed: total times.

The image is Corral's built-in busybox, saved with `corral save` and loaded into podman,
so every engine runs the same bytes. Podman runs with its own --root/--runroot in a temp
dir, cgroupfs, runc (crun cannot run on this host's hybrid cgroup layout) and ulimits the
host allows; nothing is pulled from a network. Docker is measured only if `docker info`
answers: the benchmark starts its own dockerd (Debian's docker.io, when installed) with
its data, exec root and socket in temp dirs, no bridge and no iptables, containers under
a cgroup parent of its own; all of it is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import smaps

CORRAL = [sys.executable, "-m", "corral.cli.main"]
WORK = Path(f"/var/tmp/corral-bench-engine-{os.getpid()}")
RUN = Path(f"/run/corral-bench-engine-{os.getpid()}")
IMAGE = "corral/busybox"
# Every engine without a network: this measures the container's start (bench/network.py
# measures bridged starts).
NO_NET = ("--network", "none")


def corral_cmd() -> list[str]:
    return [*CORRAL, "--data-root", str(WORK / "corral")]


def podman_cmd() -> list[str]:
    return [
        "podman", "--root", str(WORK / "podman"), "--runroot", str(RUN / "podman"),
        "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", "runc",
    ]  # fmt: skip


PODMAN_CGROUP = f"/corral-bench-podman-{os.getpid()}"  # removed at the end
PODMAN_RUN = [
    "--cgroup-parent",
    PODMAN_CGROUP,
    "--pull",
    "never",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
]


DOCKER_SOCK = RUN / "docker" / "docker.sock"
DOCKER_CGROUP = f"/corral-bench-docker-{os.getpid()}"


def docker_cmd() -> list[str]:
    client = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    return [client, "-H", f"unix://{DOCKER_SOCK}"]


def start_dockerd() -> subprocess.Popen[bytes] | None:
    if not shutil.which("dockerd"):
        return None
    (RUN / "docker").mkdir(parents=True)
    log = open(WORK / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(WORK / "docker"),
         "--exec-root", str(RUN / "docker" / "exec"),
         "-H", f"unix://{DOCKER_SOCK}", "--pidfile", str(RUN / "docker" / "docker.pid"),
         "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
         "--cgroup-parent", DOCKER_CGROUP],
        stdout=log, stderr=log,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while subprocess.run([*docker_cmd(), "info"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.2)
    return proc


def stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    subprocess.run([*docker_cmd(), "rm", "-f", *_docker_ids()], capture_output=True)
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    remove_cgroup_parent(DOCKER_CGROUP)


def remove_cgroup_parent(name: str) -> None:
    """The cgroup parent a peer engine made for this benchmark, in every hierarchy."""
    for top in Path("/sys/fs/cgroup").glob(f"*{name}"):
        for d in [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]:
            try:
                d.rmdir()
            except OSError as err:
                print(f"cleanup: {d}: {err}", file=sys.stderr)


def _docker_ids() -> list[str]:
    out = subprocess.run([*docker_cmd(), "ps", "-aq"], capture_output=True, text=True).stdout
    return out.split()


def run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def children_named(name: str) -> list[int]:
    """Pids whose executable's name is `name` (read from /proc; nothing is signalled)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    out.append(int(entry))
            except OSError:
                continue
    return out


DOCKERD: subprocess.Popen[bytes] | None = None


def setup() -> dict[str, list[str]]:
    env_parent = f"corral-bench-{os.getpid()}"
    os.environ["CORRAL_CGROUP_PARENT"] = env_parent
    os.environ["CORRAL_ROOT"] = str(RUN / "corral")
    subprocess.run([*corral_cmd(), "run", "--rm", "-q", *NO_NET, IMAGE, "true"], check=True)
    archive = WORK / "busybox.tar"
    subprocess.run([*corral_cmd(), "save", "-o", str(archive), IMAGE], check=True)
    subprocess.run(
        [*podman_cmd(), "load", "-q", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL
    )
    tools = {
        "corral": [*corral_cmd(), "run", "--rm", *NO_NET, IMAGE, "true"],
        "podman": [*podman_cmd(), "run", "--rm", *PODMAN_RUN, f"localhost/{IMAGE}", "true"],
    }
    if DOCKERD is not None:
        load = [*docker_cmd(), "load", "-q", "-i", str(archive)]
        subprocess.run(load, check=True, stdout=subprocess.DEVNULL)
        tools["docker"] = [*docker_cmd(), "run", "--rm", "--network", "none", IMAGE, "true"]
    return tools


def bench_run_rm(tools: dict[str, list[str]], runs: int) -> None:
    times: dict[str, list[float]] = {t: [] for t in tools}
    for argv in tools.values():
        run(argv)  # warm
    for _ in range(runs):
        for name, argv in tools.items():  # interleaved
            times[name].append(run(argv))
    base = statistics.median(times["corral"])
    print(f"\nrun --rm IMAGE true ({runs} runs)      median      p90    ratio to corral")
    for name, values in times.items():
        med = statistics.median(values)
        p90 = sorted(values)[int(len(values) * 0.9) - 1]
        print(f"  {name:<32} {med * 1000:7.1f} ms {p90 * 1000:7.1f} ms    {med / base:5.2f}x")


def bench_memory(tools: dict[str, list[str]]) -> None:
    print("\nmemory kept per idle container (RSS / PSS, kB)")
    cid = subprocess.run(
        [*corral_cmd(), "run", "-d", *NO_NET, IMAGE, "sleep", "1000"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    import json

    time.sleep(1)  # measured once settled: the monitor re-execs itself lean after the start

    state = json.loads((WORK / "corral" / "containers" / cid / "state.json").read_text())
    rss, pss = smaps(state["monitor_pid"])
    print(f"  corral monitor                   {rss:6d} / {pss:6d}")
    subprocess.run([*corral_cmd(), "rm", "-f", cid], check=True, stdout=subprocess.DEVNULL)
    before = set(children_named("conmon"))
    pid = subprocess.run(
        [*podman_cmd(), "run", "-d", *PODMAN_RUN, f"localhost/{IMAGE}", "sleep", "1000"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    time.sleep(1)
    conmons = sorted(set(children_named("conmon")) - before)
    if conmons:
        rss, pss = smaps(conmons[0])
        print(f"  podman conmon                    {rss:6d} / {pss:6d}")
    subprocess.run(
        [*podman_cmd(), "rm", "-f", "-t", "0", pid], check=True, stdout=subprocess.DEVNULL
    )
    if "docker" in tools:
        before = set(children_named("containerd-shim")) | set(
            children_named("containerd-shim-runc-v2")
        )
        did = subprocess.run(
            [*docker_cmd(), "run", "-d", "--network", "none", IMAGE, "sleep", "1000"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        time.sleep(1)
        shims = sorted(
            (
                set(children_named("containerd-shim"))
                | set(children_named("containerd-shim-runc-v2"))
            )
            - before
        )
        if shims:
            rss, pss = smaps(shims[0])
            print(f"  docker containerd-shim          {rss:6d} / {pss:6d}")
        subprocess.run([*docker_cmd(), "rm", "-f", did], check=True, stdout=subprocess.DEVNULL)


def bench_many(tools: dict[str, list[str]], many: int) -> None:
    print(f"\n{many} containers running `sleep 1000`: start all, then stop and remove all")
    results = {}
    engines = {
        "corral": (corral_cmd(), [*NO_NET, IMAGE]),
        "podman": (podman_cmd(), [*PODMAN_RUN, f"localhost/{IMAGE}"]),
    }
    if "docker" in tools:
        engines["docker"] = (docker_cmd(), ["--network", "none", IMAGE])
    for name, (base, image_args) in engines.items():
        ids = []
        t0 = time.perf_counter()
        for _ in range(many):
            out = subprocess.run(
                [*base, "run", "-d", *image_args, "sleep", "1000"],
                check=True,
                capture_output=True,
                text=True,
            )
            ids.append(out.stdout.strip())
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        subprocess.run(
            [*base, "stop", "-t", "0", *ids],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run([*base, "rm", *ids], check=True, stdout=subprocess.DEVNULL)
        stopped = time.perf_counter() - t1
        results[name] = (started, stopped)
    base_start, base_stop = results["corral"]
    for name, (started, stopped) in results.items():
        print(
            f"  {name:<8} start {started:6.2f} s ({started / base_start:4.2f}x)   "
            f"stop+rm {stopped:6.2f} s ({stopped / base_stop:4.2f}x)"
        )


def cleanup() -> None:
    subprocess.run([*podman_cmd(), "rm", "-a", "-f", "-t", "0"], capture_output=True)
    subprocess.run([*podman_cmd(), "rmi", "-a", "-f"], capture_output=True)
    remove_cgroup_parent(PODMAN_CGROUP)
    ids = subprocess.run(
        [*corral_cmd(), "ps", "-aq", "--no-trunc"], capture_output=True, text=True
    ).stdout.split()
    if ids:
        subprocess.run([*corral_cmd(), "rm", "-f", *ids], capture_output=True)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith((str(WORK), str(RUN)))), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.rmtree(RUN, ignore_errors=True)
    from corral.cgroups import open_manager

    try:
        open_manager(parent=os.environ["CORRAL_CGROUP_PARENT"]).remove_parent()
    except Exception as err:
        print(f"cleanup: cgroup parent: {err}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--many", type=int, default=100)
    args = parser.parse_args()
    global DOCKERD
    try:
        WORK.mkdir(parents=True)
        RUN.mkdir(parents=True)
        DOCKERD = start_dockerd()
        tools = setup()
        if "docker" not in tools:
            print(
                "docker: dockerd is not installed (apt-get install docker.io): "
                "measured corral and podman"
            )
        bench_run_rm(tools, args.runs)
        bench_memory(tools)
        bench_many(tools, args.many)
    finally:
        if DOCKERD is not None:
            stop_dockerd(DOCKERD)
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
