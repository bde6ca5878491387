"""`corral lxc` side by side with LXC 5.0 (Debian's lxc), one run:

    sudo .venv/bin/python bench/lxc.py [--runs 10]

Each round, for each tool in turn: create a busybox system container, start it (in the
background; timed until the command returns, as lxc-start -d), attach `true`, stop it
with -k, execute `true` in it (an application container with a minimal init), destroy it.
Medians over --runs, ratios of each to LXC.

Both get a config without a network (lxc.net.0.type = empty) so that neither measures
bridge setup, and their own container directory under /var/tmp.

A third column, "warm", runs the same `corral lxc` commands forked from this process with
every module Corral needs already loaded and the parser built: no interpreter start-up, no
imports, no argparse set-up. It is the floor of any design that keeps a Python process
resident (a daemon with a thin client): what Python costs to do the steps themselves. LXC runs with
lxc.cgroup.relative = 1 (its cgroups below this benchmark's, never at the hierarchy root)
and without AppArmor (not on this host). Everything is destroyed at the end.
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
from typing import Any

WORK = Path(f"/var/tmp/corral-bench-lxc-{os.getpid()}")
# The installed command, as a user runs it (scripts/setup.sh's launcher).
CORRAL = [str(Path(sys.executable).parent / "corral"), "--data-root", str(WORK / "corral"), "lxc"]
LXC_PATH = str(WORK / "lxc")
STEPS = ("create", "start", "attach true", "stop -k", "execute true", "destroy")


def commands(tool: str, name: str, config: str) -> list[list[str]]:
    if tool in ("corral", "warm"):
        base = CORRAL
        return [
            [*base, "create", "-n", name, "-t", "busybox", "-f", config],
            [*base, "start", "-n", name],
            [*base, "attach", "-n", name, "--", "true"],
            [*base, "stop", "-k", "-n", name],
            [*base, "execute", "-n", name, "--", "true"],
            [*base, "destroy", "-n", name],
        ]
    p = ["-P", LXC_PATH, "-n", name]
    return [
        ["lxc-create", *p, "-t", "busybox", "-f", config],
        ["lxc-start", *p, "-d"],
        ["lxc-attach", *p, "--", "true"],
        ["lxc-stop", *p, "-k"],
        ["lxc-execute", *p, "--", "true"],
        ["lxc-destroy", *p],
    ]


def warm_preload() -> Any:
    """Load what the commands use; the parser of every `corral lxc` verb."""
    # Imported for their side effect: loaded here, not in the timed children.
    import corral.cgroups.warmup
    import corral.engine.attach
    import corral.engine.monitor
    import corral.lxc.bundle
    import corral.lxc.manager
    import corral.lxc.storage
    import corral.lxc.templates
    import corral.runtime.container
    import corral.runtime.execspec
    import corral.runtime.spawn  # noqa: F401
    from corral.cli.main import build_parser

    return build_parser(CORRAL[1:])


def timed_warm(parser: Any, argv: list[str]) -> float:
    """One command in a child forked from this warm process (argv without the program)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(null, fd)
            args = parser.parse_args(argv)
            code = args.func(args)
            sys.stdout.flush()
        except BaseException as err:
            print(f"{' '.join(argv)}: {err}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"warm {' '.join(argv)} failed ({status})")
    return elapsed


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def lxc_pivots() -> set[Path]:
    """LXC parks its monitor in `lxc.pivot` below the caller's cgroup in each hierarchy;
    those it makes during the run are removed at the end."""
    found = set()
    with open("/proc/self/cgroup") as f:
        own = [line.strip().split(":", 2) for line in f if line.strip()]
    for _, controllers, path in own:
        names = [c.removeprefix("name=") for c in controllers.split(",") if c] or ["unified"]
        for name in names:
            candidate = Path("/sys/fs/cgroup") / name / path.lstrip("/") / "lxc.pivot"
            if candidate.is_dir():
                found.add(candidate)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("lxc-create"):
        raise SystemExit("LXC is not installed (apt-get install lxc)")
    os.environ["CORRAL_CGROUP_PARENT"] = f"corral-bench-lxc-{os.getpid()}"
    os.environ["CORRAL_ROOT"] = f"/run/corral-bench-lxc-{os.getpid()}"
    WORK.mkdir(parents=True)
    configs = {
        "corral": WORK / "corral.conf",
        "warm": WORK / "corral.conf",
        "lxc": WORK / "lxc.conf",
    }
    configs["corral"].write_text("lxc.net.0.type = empty\n")
    configs["lxc"].write_text(
        "lxc.net.0.type = empty\nlxc.cgroup.relative = 1\nlxc.apparmor.profile = unconfined\n"
    )
    times: dict[str, dict[str, list[float]]] = {t: {s: [] for s in STEPS} for t in configs}
    pivots_before = lxc_pivots()
    parser = warm_preload()
    try:
        for i in range(args.runs + 1):  # round 0 warms caches and is not counted
            for tool, config in configs.items():
                name = f"bench{i}{tool[0]}"
                for step, argv in zip(STEPS, commands(tool, name, str(config)), strict=True):
                    elapsed = timed_warm(parser, argv[1:]) if tool == "warm" else timed(argv)
                    if i:
                        times[tool][step].append(elapsed)
        print(f"\ncorral lxc vs LXC {lxc_version()} ({args.runs} runs, medians)")
        print(f"  {'':<14}{'corral':>10}{'lxc':>10}   ratio{'warm':>11}   ratio")
        for step in STEPS:
            ours, warm, theirs = (statistics.median(times[t][step]) for t in configs)
            print(
                f"  {step:<14}{ours * 1000:8.1f} ms{theirs * 1000:7.1f} ms   {ours / theirs:5.2f}x"
                f"{warm * 1000:8.1f} ms   {warm / theirs:5.2f}x"
            )
    finally:
        cleanup()
        for pivot in lxc_pivots() - pivots_before:
            try:
                pivot.rmdir()
            except OSError as err:
                print(f"cleanup: {pivot}: {err}", file=sys.stderr)
    return 0


def lxc_version() -> str:
    return subprocess.run(["lxc-info", "--version"], capture_output=True, text=True).stdout.strip()


def cleanup() -> None:
    for name in os.listdir(LXC_PATH) if os.path.isdir(LXC_PATH) else []:
        subprocess.run(["lxc-destroy", "-f", "-P", LXC_PATH, "-n", name], capture_output=True)
    out = subprocess.run([*CORRAL, "ls", "-1"], capture_output=True, text=True).stdout
    for name in out.split():
        subprocess.run([*CORRAL, "destroy", "-f", "-s", "-n", name], capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.rmtree(os.environ["CORRAL_ROOT"], ignore_errors=True)
    from corral.cgroups import open_manager

    try:
        open_manager(parent=os.environ["CORRAL_CGROUP_PARENT"]).remove_parent()
    except Exception as err:
        print(f"cleanup: cgroup parent: {err}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
