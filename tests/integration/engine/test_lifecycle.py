"""What the monitor does over a container's life: restart policies, health checks, log
rotation and reading, volumes that outlive containers, attach, restart; and the truth
told (and everything removed) after kill -9 of the CLI, the monitor, or both."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import TEST_DATA
from tests.helpers import processes_mentioning
from tests.integration.engine.conftest import IMAGE, Corral, wait_for


def test_restart_on_failure_counts(corral: Corral) -> None:
    corral.run(
        "-d", "--name", "t-rs", "--restart", "on-failure:2", IMAGE, "sh", "-c", "echo try; exit 3"
    )
    assert wait_for(
        lambda: (
            corral.inspect("t-rs")["State"]["Status"] == "exited"
            and corral.inspect("t-rs")["RestartCount"] == 2
        ),
        20,
    )
    time.sleep(0.5)
    doc = corral.inspect("t-rs")
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 3
    assert corral("logs", "t-rs").stdout == "try\n" * 3


def test_restart_always_until_stopped(corral: Corral) -> None:
    corral.run(
        "-d", "--name", "t-always", "--restart", "always", IMAGE, "sh", "-c", "sleep 0.2; exit 0"
    )
    assert wait_for(lambda: corral.inspect("t-always")["RestartCount"] >= 2, 20)
    corral("stop", "t-always")
    count = corral.inspect("t-always")["RestartCount"]
    time.sleep(1)
    doc = corral.inspect("t-always")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count


def test_no_restart_after_success_with_on_failure(corral: Corral) -> None:
    corral.run("-d", "--name", "t-ok", "--restart", "on-failure", IMAGE, "true")
    assert corral("wait", "t-ok").stdout.strip() == "0"
    time.sleep(0.5)
    assert corral.inspect("t-ok")["RestartCount"] == 0


def test_health_status_changes(corral: Corral) -> None:
    corral.run(
        "-d", "--name", "t-health", "--health-cmd", "test -e /tmp/ok", "--health-interval", "0.2s",
        "--health-retries", "2", IMAGE, "sh", "-c",
        "while [ ! -e /tmp/make-ok ]; do sleep 0.1; done; touch /tmp/ok; "
        "while [ ! -e /tmp/make-bad ]; do sleep 0.1; done; rm /tmp/ok; sleep 100",
    )  # fmt: skip
    seen = []

    def status() -> str:
        value = str(corral.inspect("t-health")["State"]["Health"]["Status"])
        if not seen or seen[-1] != value:
            seen.append(value)
        return value

    assert wait_for(lambda: status() == "starting", 30)
    corral("exec", "t-health", "touch", "/tmp/make-ok")
    assert wait_for(lambda: status() == "healthy", 30)
    corral("exec", "t-health", "touch", "/tmp/make-bad")
    assert wait_for(lambda: status() == "unhealthy", 30)
    assert "starting" in seen and seen[-2:] == ["healthy", "unhealthy"]
    assert "(unhealthy)" in corral("ps", "--format", "{{.Status}}", "-f", "name=t-health").stdout
    log = corral.inspect("t-health")["State"]["Health"]["Log"]
    assert log and log[-1]["ExitCode"] == 1


def test_log_rotation_and_reading(corral: Corral) -> None:
    corral.run(
        "--name",
        "t-logs",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; echo to-stderr >&2",
    )
    doc = corral.inspect("t-logs")
    base = Path(doc["LogPath"])
    files = sorted(p.name for p in base.parent.glob("json.log*"))
    assert files == ["json.log", "json.log.1", "json.log.2"]
    assert all(p.stat().st_size <= 2048 for p in base.parent.glob("json.log*"))
    record = json.loads(base.read_text().splitlines()[-1])
    assert (
        record["stream"] == "stderr"
        and record["log"] == "to-stderr\n"
        and record["time"].endswith("Z")
    )
    tail = corral("logs", "--tail", "3", "t-logs")
    assert tail.stdout.split() == ["line-198", "line-199"] and tail.stderr == "to-stderr\n"
    stamped = corral("logs", "-t", "--tail", "1", "t-logs").stderr
    assert stamped.split(" ", 1)[1] == "to-stderr\n" and stamped[:4].isdigit()
    assert corral("logs", "--since", "1h", "--tail", "1", "t-logs").stderr == "to-stderr\n"
    assert corral("logs", "--since", "2000000000", "t-logs").stdout == ""  # in the future


def test_logs_follow(corral: Corral) -> None:
    corral.run(
        "-d",
        "--name",
        "t-follow",
        IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick-$i; sleep 0.3; done",
    )
    out = corral("logs", "-f", "t-follow", timeout=30).stdout
    assert out.split() == ["tick-1", "tick-2", "tick-3"]


def test_volumes_persist_and_bind_mounts(corral: Corral, tmp_path: Path) -> None:
    corral.run("--rm", "-v", "t-vol:/data", IMAGE, "sh", "-c", "echo kept > /data/file")
    assert corral.run("--rm", "-v", "t-vol:/data:ro", IMAGE, "cat", "/data/file").stdout == "kept\n"
    ro = corral.run("--rm", "-v", "t-vol:/data:ro", IMAGE, "touch", "/data/x", check=False)
    assert ro.returncode != 0
    assert "t-vol" in corral("volume", "ls", "-q").stdout.split()
    corral.run("-d", "--name", "t-vol-user", "-v", "t-vol:/data", IMAGE, "sleep", "100")
    busy = corral("volume", "rm", "t-vol", check=False)
    assert busy.returncode == 1 and "in use" in busy.stderr
    corral("rm", "-f", "t-vol-user")
    corral("volume", "rm", "t-vol")
    host = tmp_path / "shared"
    host.mkdir()
    corral.run(
        "--rm", "-v", f"{host}:/shared", IMAGE, "sh", "-c", "echo from-container > /shared/f"
    )
    assert (host / "f").read_text() == "from-container\n"
    corral.run(
        "--rm", "--mount", f"type=bind,source={host},target=/m,readonly", IMAGE, "cat", "/m/f"
    )
    anon = corral.run("-d", "--name", "t-anon", "-v", "/anon", IMAGE, "sleep", "100").stdout.strip()
    vol = corral.inspect(anon)["Mounts"][0]["Name"]
    assert vol in corral("volume", "ls", "-q").stdout.split()
    corral("rm", "-f", "-v", "t-anon")
    assert vol not in corral("volume", "ls", "-q").stdout.split()


def test_attach_to_a_running_container(corral: Corral) -> None:
    corral.run(
        "-d",
        "--name",
        "t-attach",
        IMAGE,
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after-attach; exit 6",
    )
    attached = subprocess.Popen(
        corral.argv("attach", "t-attach"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(2)  # connected long before (attach shows what comes after it joins)
    corral("exec", "t-attach", "touch", "/tmp/go")
    out, _ = attached.communicate(timeout=60)
    assert out == "after-attach\n" and attached.returncode == 6


def test_restart_and_start_again(corral: Corral) -> None:
    corral.run("-d", "--name", "t-again", IMAGE, "sh", "-c", "echo run; sleep 100")
    corral("restart", "-t", "1", "t-again")
    assert corral.inspect("t-again")["State"]["Running"]
    corral("stop", "-t", "1", "t-again")
    corral("start", "t-again")
    assert wait_for(lambda: corral("logs", "t-again").stdout == "run\n" * 3)


def test_rm_of_running_container_needs_force(corral: Corral) -> None:
    corral.run("-d", "--name", "t-rm", IMAGE, "sleep", "100")
    refused = corral("rm", "t-rm", check=False)
    assert refused.returncode == 1 and "stop it first or use -f" in refused.stderr
    corral("rm", "-f", "t-rm")
    assert "t-rm" not in corral("ps", "-a").stdout


def _leftovers(cid: str) -> list[str]:
    """Anything of this container still on the machine."""
    found = []
    if any(cid in line for line in Path("/proc/self/mountinfo").read_text().splitlines()):
        found.append("mount")
    if processes_mentioning(cid[:32]):
        found.append("process")
    if (TEST_DATA / "containers" / cid).exists():
        found.append("record")
    if list(Path("/sys/fs/cgroup").glob(f"*/**/{cid}")):
        found.append("cgroup")
    return found


def test_kill_9_of_the_monitor_then_ps_tells_the_truth_and_rm_cleans(corral: Corral) -> None:
    cid = corral.run("-d", "--name", "t-k9", IMAGE, "sleep", "100").stdout.strip()
    state = json.loads((TEST_DATA / "containers" / cid / "state.json").read_text())
    os.kill(state["monitor_pid"], signal.SIGKILL)
    time.sleep(0.2)
    assert "Up " in corral("ps", "-f", "name=t-k9", "--format", "{{.Status}}").stdout  # still runs
    os.kill(state["pid"], signal.SIGKILL)  # now the container dies with nobody watching
    assert wait_for(lambda: corral.inspect("t-k9")["State"]["Status"] == "exited")
    assert "Exited" in corral("ps", "-a", "-f", "name=t-k9", "--format", "{{.Status}}").stdout
    corral("rm", "-f", "t-k9")
    assert _leftovers(cid) == []


def test_kill_9_of_the_cli_mid_start_and_of_both(corral: Corral) -> None:
    """Kill the CLI at staggered moments of `run -d`; whatever it left, ps shows and rm -f
    removes (processes, mounts, cgroups, snapshot, records)."""
    for delay in (0.05, 0.15, 0.3, 0.6):
        proc = subprocess.Popen(
            corral.argv("run", "-d", "--name", "t-mid", IMAGE, "sleep", "100"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()
        proc.wait()
        ids = corral("ps", "-aq", "--no-trunc", "-f", "name=t-mid").stdout.split()
        for cid in ids:
            state = json.loads((TEST_DATA / "containers" / cid / "state.json").read_text())
            if state.get("monitor_pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state["monitor_pid"], signal.SIGKILL)  # and the monitor too
            corral("rm", "-f", cid)
            assert _leftovers(cid) == [], delay
        # a name freed by the removal can be used again
        assert "t-mid" not in corral("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_cp_both_ways_running_or_not(corral: Corral, tmp_path: Path) -> None:
    corral.run(
        "-d",
        "--name",
        "t-cp",
        "-v",
        "t-cp-vol:/data",
        IMAGE,
        "sh",
        "-c",
        "echo inside > /tmp/made-inside; ln -s /etc/passwd /tmp/link; sleep 100",
    )
    assert wait_for(
        lambda: (
            corral("exec", "t-cp", "test", "-e", "/tmp/made-inside", check=False).returncode == 0
        )
    )
    src = tmp_path / "from-host.txt"
    src.write_text("from the host\n")
    corral("cp", str(src), "t-cp:/tmp/")
    assert corral("exec", "t-cp", "cat", "/tmp/from-host.txt").stdout == "from the host\n"
    corral("cp", str(src), "t-cp:/data/in-volume.txt")  # lands in the volume
    assert corral("exec", "t-cp", "cat", "/data/in-volume.txt").stdout == "from the host\n"
    out = tmp_path / "out.txt"
    corral("cp", "t-cp:/tmp/made-inside", str(out))
    assert out.read_text() == "inside\n"
    corral("cp", "t-cp:/tmp/link", str(tmp_path / "link"))
    assert os.readlink(tmp_path / "link") == "/etc/passwd"  # copied as a link, not followed
    corral("stop", "-t", "0", "t-cp")
    corral("cp", "t-cp:/tmp/made-inside", str(tmp_path / "after-stop.txt"))  # stopped: still works
    assert (tmp_path / "after-stop.txt").read_text() == "inside\n"
    assert not [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if corral.inspect("t-cp")["Id"] in line
    ]
    bad = corral("cp", str(src), str(tmp_path / "x"), check=False)
    assert bad.returncode == 1 and "CONTAINER:PATH" in bad.stderr


def test_stats(corral: Corral) -> None:
    corral.run("-d", "--name", "t-stats", "-m", "64m", IMAGE, "sh", "-c", "while true; do :; done")
    rows = [
        json.loads(line)
        for line in corral(
            "stats", "--no-stream", "--format", "json", "t-stats"
        ).stdout.splitlines()
    ]
    assert len(rows) == 1 and rows[0]["Name"] == "t-stats"
    assert rows[0]["CPUPerc"] > 20 and rows[0]["MemLimit"] == 64 << 20 and rows[0]["PIDs"] == 1
    table = corral("stats", "--no-stream", "t-stats").stdout
    assert "t-stats" in table and "MEM USAGE / LIMIT" in table
