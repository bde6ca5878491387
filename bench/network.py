"""Bridge networking side by side with podman (and docker when dockerd is installed):

    sudo .venv/bin/python bench/network.py [--runs 10] [--cycles 50]

1. From `run -d -p 127.0.0.1:PORT:80 IMAGE httpd` to the first HTTP answer on the host's
   127.0.0.1:PORT (polled every 2 ms), then `rm -f` timed apart: medians over --runs,
   interleaved, ratios to Corral.
2. Network setup + teardown for one container alone, --cycles times: Corral's
   corral.network.endpoints (setup() then teardown() on a process in its own net
   namespace; warm: modules loaded; cold: a fresh interpreter that imports them) against
   the same work done with iproute2 commands (netns, veth, master, addresses, route).

Every engine runs the same image (Corral's built-in busybox, saved and loaded) on a network
of its own made for the benchmark, removed at the end: Corral's in its own data root with
its own bridge and nft table; podman's with netavark (`podman network create`); docker's
daemon started for the run (see bench/engine_run.py) with a user network and its userland
proxy for 127.0.0.1 (`--iptables=false`: it may not touch the host's firewall). All traffic
stays on this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import engine_run as er

NET = "corral-bench"
HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
SUBNETS = {"corral": "10.247.1.0/24", "podman": "10.247.2.0/24", "docker": "10.247.3.0/24"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def engines() -> dict[str, tuple[list[str], list[str], str]]:
    """name -> (command, run flags, image)."""
    found = {
        "corral": (er.corral_cmd(), ["--network", NET], er.IMAGE),
        "podman": (
            er.podman_cmd(),
            [a for a in er.PODMAN_RUN if a not in ("--network", "none")] + ["--network", NET],
            f"localhost/{er.IMAGE}",
        ),
    }
    if er.DOCKERD is not None:
        found["docker"] = (er.docker_cmd(), ["--network", NET], er.IMAGE)
    return found


def quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def setup_networks(found: dict[str, tuple[list[str], list[str], str]]) -> None:
    for name, (base, _, _) in found.items():
        extra = ["-o", "com.docker.network.bridge.name=crlbdock0"] if name == "docker" else []
        quiet([*base, "network", "create", "--subnet", SUBNETS[name], *extra, NET])


def remove_networks(found: dict[str, tuple[list[str], list[str], str]]) -> None:
    for name, (base, _, _) in found.items():
        if name == "podman":
            subprocess.run([*base, "rm", "-a", "-f", "-t", "0"], capture_output=True)
        subprocess.run([*base, "network", "rm", NET], capture_output=True)
    subprocess.run([*er.corral_cmd(), "network", "prune", "-f"], capture_output=True)


def bench_publish(found: dict[str, tuple[list[str], list[str], str]], runs: int) -> None:
    to_answer: dict[str, list[float]] = {n: [] for n in found}
    removal: dict[str, list[float]] = {n: [] for n in found}
    for i in range(runs + 1):  # the first round warms caches and is not counted
        for name, (base, flags, image) in found.items():
            port = free_port()
            t0 = time.perf_counter()
            cid = subprocess.run(
                [*base, "run", "-d", *flags, "-p", f"127.0.0.1:{port}:80", image, *HTTPD],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            deadline = time.monotonic() + 30
            while not answers(port):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: no answer on {port}")
                time.sleep(0.002)
            t1 = time.perf_counter()
            rm = [*base, "rm", "-f", *(["-t", "0"] if name == "podman" else []), cid]
            subprocess.run(rm, check=True, stdout=subprocess.DEVNULL)
            t2 = time.perf_counter()
            if i:
                to_answer[name].append(t1 - t0)
                removal[name].append(t2 - t1)
    base_answer = statistics.median(to_answer["corral"])
    base_rm = statistics.median(removal["corral"])
    print(f"\nrun -d -p ... httpd -> first HTTP answer on 127.0.0.1 ({runs} runs, medians)")
    print("                to answer     ratio      rm -f      ratio")
    for name in found:
        a, r = statistics.median(to_answer[name]), statistics.median(removal[name])
        print(
            f"  {name:<8} {a * 1000:9.1f} ms  {a / base_answer:6.2f}x  {r * 1000:7.1f} ms  "
            f"{r / base_rm:6.2f}x"
        )


IPROUTE_CYCLE = """
set -e
ip netns add crlbench
ip link add crlbv0 type veth peer name eth0 netns crlbench
ip link set crlbv0 master {bridge} up
ip -n crlbench link set lo up
ip -n crlbench addr add 10.247.1.200/24 dev eth0
ip -n crlbench link set eth0 up
ip -n crlbench route add default via 10.247.1.1
ip link del crlbv0
ip netns del crlbench
"""

CORRAL_CYCLE = """
import os, sys, time
t0 = time.perf_counter()
from corral.network import endpoints
cycles = int(sys.argv[2])
owner = endpoints.Owner(id="b" * 64, name="bench", hostname="bench",
                        pid=int(sys.argv[1]), pid_start=0)
attachment = endpoints.Attachment(network=sys.argv[3], aliases=[])
root = sys.argv[4]
times = []
for i in range(cycles):
    t = time.perf_counter()
    endpoints.setup(root, owner, [attachment], [])
    endpoints.teardown(root, owner.id)
    times.append(time.perf_counter() - t)
    if i == 0:
        print(f"cold {time.perf_counter() - t0:.6f}")
print("warm", " ".join(f"{x:.6f}" for x in times[1:]))
"""


def bench_cycle(cycles: int) -> None:
    bridge = "crl-" + _corral_network_id()[:11]
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"])
    try:
        time.sleep(0.1)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CORRAL_CYCLE,
                str(holder.pid),
                str(cycles),
                NET,
                str(er.WORK / "corral"),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    finally:
        holder.kill()
        holder.wait()
    cold = float(out[0].split()[1])
    warm = statistics.median(float(x) for x in out[1].split()[1:])
    ip_times = []
    script = IPROUTE_CYCLE.format(bridge=bridge)
    for _ in range(cycles):
        t = time.perf_counter()
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        ip_times.append(time.perf_counter() - t)
        if done.returncode != 0:
            subprocess.run(["ip", "netns", "del", "crlbench"], capture_output=True)
            raise SystemExit(f"iproute2 cycle failed: {done.stderr.strip()}")
    ip = statistics.median(ip_times)
    print(f"\nnetwork setup + teardown for one container ({cycles} cycles, medians)")
    print(f"  corral, modules loaded      {warm * 1000:7.1f} ms   {warm / ip:5.2f}x iproute2")
    print(f"  corral, cold (incl. import) {cold * 1000:7.1f} ms   {cold / ip:5.2f}x iproute2")
    print(f"  iproute2 commands           {ip * 1000:7.1f} ms")


def _corral_network_id() -> str:
    import json

    argv = [*er.corral_cmd(), "network", "inspect", NET]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    network_id: str = json.loads(out.stdout)[0]["Id"]
    return network_id


def nft_tables() -> set[tuple[str, str]]:
    import json

    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout
    items = json.loads(out or '{"nftables": []}')["nftables"]
    return {(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i}


def remove_peer_tables(before: set[tuple[str, str]]) -> None:
    """podman's netavark leaves its iptables chains (tables ip nat / ip filter) behind:
    tables that appeared during this run are removed, so the host is as it was."""
    for family, name in sorted(nft_tables() - before):
        if (family, name) in (("ip", "nat"), ("ip", "filter"), ("ip6", "nat"), ("ip6", "filter")):
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=50)
    args = parser.parse_args()
    os.environ["CORRAL_BRIDGE"] = "crlbench0"
    os.environ["CORRAL_NFT_TABLE"] = f"corral_bench_{os.getpid()}"
    os.environ["CORRAL_DEFAULT_SUBNET"] = "10.247.0.0/24"
    found: dict[str, tuple[list[str], list[str], str]] = {}
    tables_before = nft_tables()
    try:
        er.WORK.mkdir(parents=True)
        er.RUN.mkdir(parents=True)
        er.DOCKERD = er.start_dockerd()
        er.setup()  # the image, in every engine
        found = engines()
        if "docker" not in found:
            print("docker: dockerd is not installed (apt-get install docker.io): not measured")
        setup_networks(found)
        bench_publish(found, args.runs)
        bench_cycle(args.cycles)
    finally:
        remove_networks(found)
        if er.DOCKERD is not None:
            er.stop_dockerd(er.DOCKERD)
        er.cleanup()
        shutil.rmtree(er.WORK, ignore_errors=True)
        remove_peer_tables(tables_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
