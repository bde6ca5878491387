"""The lifecycle and the command line: create / start / state / kill / delete / run, exit
codes, errors that name the problem, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from corral.cgroups import open_manager
from tests.conftest import TEST_PARENT
from tests.helpers import wait_until

from .conftest import RuntimeCLI


def _cgroup_exists(cid: str) -> bool:
    return open_manager(parent=TEST_PARENT).exists(cid)


def test_run_exit_code_and_output(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    result = rt("run", "--bundle", str(b.path), b.id, check=False)
    assert (result.returncode, result.stdout, result.stderr.strip()[-3:]) == (3, "out\n", "err")
    assert rt("list", "-q").stdout.split() == []
    assert not _cgroup_exists(b.id)


def test_run_killed_by_signal_is_128_plus_n(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sleep", "60"])
    proc = subprocess.Popen(
        [rt.binary, "--root", str(rt.root), "run", "--bundle", str(b.path), b.id],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(
            lambda: (
                b.id in rt("list", "-q").stdout.split() and rt.state(b.id)["status"] == "running"
            )
        )
        rt("kill", b.id, "KILL")
        assert proc.wait(20) == 128 + signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_create_start_state_kill_delete(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    b = bundle(["sleep", "60"])
    pid_file = tmp_path / "pid"
    rt("create", "--bundle", str(b.path), "--pid-file", str(pid_file), b.id)
    st = rt.state(b.id)
    assert st["status"] == "created" and st["id"] == b.id
    assert int(pid_file.read_text()) == st["pid"] > 0
    assert st["bundle"] == str(b.path)
    # Created: the process exists in its namespaces and cgroup, but has not run the program.
    assert Path(f"/proc/{st['pid']}/ns/pid").exists()
    assert os.readlink(f"/proc/{st['pid']}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert b.id in Path(f"/proc/{st['pid']}/cgroup").read_text()
    assert _cgroup_exists(b.id)
    rt("start", b.id)
    assert wait_until(lambda: rt.state(b.id)["status"] == "running")
    assert Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    listed = rt("list", "--format", "json").stdout
    assert b.id in {c["id"] for c in json.loads(listed)}
    rt("kill", b.id, "KILL")
    assert wait_until(lambda: rt.state(b.id)["status"] == "stopped")
    rt("delete", b.id)
    assert rt("state", b.id, check=False).returncode != 0
    assert not _cgroup_exists(b.id)


def test_kill_signal_names_numbers_and_all(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "trap 'exit 42' USR1; sleep 60 & wait"])
    rt("run", "--detach", "--bundle", str(b.path), b.id)
    pid = rt.state(b.id)["pid"]
    rt("kill", b.id, "SIGUSR1")
    assert wait_until(lambda: rt.state(b.id)["status"] == "stopped")
    rt("delete", b.id)
    b2 = bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    rt("run", "-d", "--bundle", str(b2.path), b2.id)
    assert wait_until(lambda: len(json.loads(rt("ps", "--format", "json", b2.id).stdout)) == 3)
    rt("kill", "--all", b2.id, "9")
    assert wait_until(
        lambda: not json.loads(rt("ps", "--format", "json", b2.id).stdout)
    )  # runc: null
    assert pid > 0
    bad = rt("kill", b2.id, "NOTASIGNAL", check=False)
    assert bad.returncode != 0


def test_delete_refuses_running_unless_forced(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", str(b.path), b.id)
    pid = rt.state(b.id)["pid"]
    refused = rt("delete", b.id, check=False)
    assert refused.returncode != 0 and "running" in refused.stderr
    rt("delete", "--force", b.id)
    assert wait_until(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    )
    assert not _cgroup_exists(b.id)
    second = rt("delete", b.id, check=False)
    assert second.returncode != 0 and "does not exist" in second.stderr
    assert rt("delete", "--force", b.id, check=False).returncode == 0


def test_delete_a_created_container(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["true"])
    rt("create", "--bundle", str(b.path), b.id)
    pid = rt.state(b.id)["pid"]
    rt("delete", "--force", b.id)
    assert wait_until(
        lambda: (
            not Path(f"/proc/{pid}/cmdline").exists()
            or not Path(f"/proc/{pid}/cmdline").read_bytes()
        )
    )
    assert not _cgroup_exists(b.id)


def test_pause_resume(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "while true; do echo x >> /tmp/ticks; sleep 0.01; done"])
    rt("run", "-d", "--bundle", str(b.path), b.id)
    ticks = b.rootfs / "tmp" / "ticks"
    assert wait_until(ticks.exists)
    rt("pause", b.id)
    assert rt.state(b.id)["status"] == "paused"
    size = ticks.stat().st_size
    time.sleep(0.3)
    assert ticks.stat().st_size == size
    rt("resume", b.id)
    assert rt.state(b.id)["status"] == "running"
    assert wait_until(lambda: ticks.stat().st_size > size)
    assert rt("resume", b.id, check=False).returncode != 0


def test_stdio_pipes_are_released_when_the_container_exits(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "echo done"])
    proc = subprocess.Popen(
        [rt.binary, "--root", str(rt.root), "run", "-d", "--bundle", str(b.path), b.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out, _ = proc.communicate(timeout=20)  # EOF: nothing of the runtime still holds the pipe
    assert out == b"done\n"
    assert wait_until(lambda: rt.state(b.id)["status"] == "stopped")


def test_version_features_and_spec(rt: RuntimeCLI, tmp_path: Path) -> None:
    lines = subprocess.run(
        [rt.binary, "--version"], capture_output=True, text=True
    ).stdout.splitlines()
    assert lines[0].startswith(f"{'corral-runtime' if rt.is_corral else 'runc'} version")
    assert lines[1].startswith("commit:") and lines[2].startswith("spec: 1.")
    features = json.loads(rt("features").stdout)
    assert "createRuntime" in features["hooks"]
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]
    rt("spec", "--bundle", str(tmp_path))
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["ociVersion"].startswith("1.") and spec["process"]["args"] == ["sh"]
    again = rt("spec", "--bundle", str(tmp_path), check=False)
    assert again.returncode != 0 and "exists" in again.stderr


# -- errors name the problem, and nothing is left ----------------------------------------------


def _nothing_left(rt: RuntimeCLI, cid: str) -> None:
    assert cid not in rt("list", "-q").stdout.split()
    assert not (rt.root / cid).exists()
    assert not _cgroup_exists(cid)


def test_missing_bundle(rt: RuntimeCLI, tmp_path: Path) -> None:
    result = rt("create", "--bundle", str(tmp_path / "nope"), "x1", check=False)
    assert result.returncode != 0
    assert "nope" in result.stderr
    _nothing_left(rt, "x1")


def test_invalid_json_names_line_and_column(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["true"])
    (b.path / "config.json").write_text('{\n  "ociVersion": "1.0.2",\n  "process": {,\n}\n')
    result = rt("create", "--bundle", str(b.path), b.id, check=False)
    assert result.returncode != 0
    if rt.is_corral:
        assert "line 3, column 15" in result.stderr
    _nothing_left(rt, b.id)


def test_unknown_namespace_type(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["true"])
    b.spec["linux"]["namespaces"].append({"type": "bogus"})
    b.write()
    result = rt("create", "--bundle", str(b.path), b.id, check=False)
    assert result.returncode != 0 and "bogus" in result.stderr
    _nothing_left(rt, b.id)


def test_unknown_capability(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["true"])
    b.spec["process"]["capabilities"]["bounding"].append("CAP_FLY")
    b.write()
    result = rt("run", "--bundle", str(b.path), b.id, check=False)
    assert "CAP_FLY" in result.stderr
    # Documented difference: runc 1.1 warns and drops unknown capabilities; Corral refuses
    # them (a typo in a capability list should not silently run with fewer privileges).
    assert result.returncode != 0 if rt.is_corral else result.returncode == 0
    _nothing_left(rt, b.id)


def test_duplicate_id(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sleep", "60"])
    rt("create", "--bundle", str(b.path), b.id)
    pid = rt.state(b.id)["pid"]
    again = rt("create", "--bundle", str(b.path), b.id, check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    assert rt.state(b.id)["pid"] == pid  # the first one is untouched
    rt("delete", "--force", b.id)


@pytest.mark.parametrize("bad_id", ["a/b", "..", "../x"])
def test_bad_ids(rt: RuntimeCLI, bundle: Any, bad_id: str) -> None:
    b = bundle(["true"])
    result = rt("create", "--bundle", str(b.path), bad_id, check=False)
    assert result.returncode != 0
    assert not (rt.root / "x").exists() and not (rt.root.parent / "x").exists()


def test_program_not_found_fails_create(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["/no/such/program"])
    result = rt("create", "--bundle", str(b.path), b.id, check=False)
    assert result.returncode != 0
    assert "no such file" in result.stderr.lower()
    _nothing_left(rt, b.id)


def test_kill_9_of_create_then_delete_leaves_nothing(
    rt: RuntimeCLI, bundle: Any, tmp_path: Path
) -> None:
    """A create killed at its slowest moment (a createRuntime hook that hangs), then delete."""
    marker = tmp_path / "hook-started"
    b = bundle(["true"])
    b.spec["hooks"] = {
        "createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {marker}; exec sleep 30"]}
        ]
    }
    b.write()
    proc = subprocess.Popen(
        [rt.binary, "--root", str(rt.root), "create", "--bundle", str(b.path), b.id],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: marker.exists() and marker.read_text().strip() != "", 20)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    hook_pid = int(marker.read_text())
    try:
        rt("delete", "--force", b.id, check=False)
        if not rt.is_corral and _cgroup_exists(b.id):
            # Documented difference: runc 1.1 has written no state yet at this point, so its
            # delete cannot find the cgroup or the waiting runc init. Clean up for it.
            open_manager(parent=TEST_PARENT).delete(b.id, force=True)
            pytest.xfail(
                "runc leaves the cgroup and its init behind when create is killed in a hook"
            )
        assert wait_until(lambda: not _cgroup_exists(b.id), 10)
        _nothing_left(rt, b.id)
    finally:
        # The hook is the runtime's child, not the container's: stop it by the pid it wrote.
        try:
            os.kill(hook_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("when", [0.0, 0.02, 0.05, 0.1])
def test_kill_9_of_create_at_any_point(rt: RuntimeCLI, bundle: Any, when: float) -> None:
    b = bundle(["sleep", "30"])
    proc = subprocess.Popen(
        [rt.binary, "--root", str(rt.root), "create", "--bundle", str(b.path), b.id],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(when)
    proc.kill()
    proc.wait()
    pids_before = rt.state(b.id)["pid"] if b.id in rt("list", "-q").stdout.split() else 0
    rt("delete", "--force", b.id, check=False)
    if not rt.is_corral and _cgroup_exists(b.id):
        open_manager(parent=TEST_PARENT).delete(b.id, force=True)  # runc left it: see above
        pytest.xfail("runc leaves the cgroup and its init behind when create is killed early")
    _nothing_left(rt, b.id)
    if pids_before:
        assert wait_until(
            lambda: (
                not Path(f"/proc/{pids_before}/cmdline").exists()
                or not Path(f"/proc/{pids_before}/cmdline").read_bytes()
            )
        )


def test_new_session_keyring_unless_no_new_keyring(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["cat", "/proc/keys"])
    b.spec["linux"]["maskedPaths"].remove("/proc/keys")
    b.write()
    out = rt("run", "--bundle", str(b.path), b.id).stdout
    assert f"_ses.{b.id}" in out
    b2 = bundle(["cat", "/proc/keys"])
    b2.spec["linux"]["maskedPaths"].remove("/proc/keys")
    b2.write()
    out = rt("run", "--no-new-keyring", "--bundle", str(b2.path), b2.id).stdout
    assert f"_ses.{b2.id}" not in out


def test_preserve_fds(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("passed through fd 3\n")
    b = bundle(["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    with open(extra) as f:
        os.set_inheritable(f.fileno(), True)
        os.dup2(f.fileno(), 3) if f.fileno() != 3 else None
        result = subprocess.run(
            [
                rt.binary,
                "--root",
                str(rt.root),
                "run",
                "--preserve-fds",
                "1",
                "--bundle",
                str(b.path),
                b.id,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            pass_fds=(3,),
        )
    assert result.returncode == 0, result.stderr
    first, fds = result.stdout.split("\n", 1)
    assert first == "passed through fd 3"
    assert "3" in fds.split()


def test_no_pivot(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l"])
    out = rt("run", "--no-pivot", "--bundle", str(b.path), b.id).stdout.split()
    assert "bin" in out and "work" not in out


def test_errors_go_to_the_json_log(rt: RuntimeCLI, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    result = subprocess.run(
        [
            rt.binary,
            "--root",
            str(rt.root),
            "--log",
            str(log),
            "--log-format",
            "json",
            "start",
            "no-such-container",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines and lines[-1]["level"] == "error"
    if rt.is_corral:  # runc's message does not name the container
        assert "no-such-container" in lines[-1]["msg"]
    assert "time" in lines[-1]


def test_systemd_cgroup_is_accepted_and_explained(rt: RuntimeCLI, bundle: Any) -> None:
    if not rt.is_corral:
        pytest.skip("runc's systemd driver needs systemd running")
    b = bundle(["true"])
    b.spec["linux"]["cgroupsPath"] = (
        f"{TEST_PARENT}:corral:{b.id}"  # -> /<parent>/corral-<id>.scope
    )
    b.write()
    result = rt("--systemd-cgroup", "run", "--bundle", str(b.path), b.id, check=False)
    assert result.returncode == 0, result.stderr
    assert "no systemd cgroup driver" in result.stderr


def test_unsupported_options_are_refused_clearly(rt: RuntimeCLI, bundle: Any) -> None:
    if not rt.is_corral:
        pytest.skip("what Corral does not support")
    b = bundle(["true"])
    b.spec["linux"]["intelRdt"] = {"closID": "x"}
    b.write()
    result = rt("run", "--bundle", str(b.path), b.id, check=False)
    assert result.returncode != 0 and "intelRdt" in result.stderr
    _nothing_left(rt, b.id)
    b2 = bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", str(b2.path), b2.id)
    refused = rt("exec", "--cgroup", "sub", b2.id, "true", check=False)
    assert refused.returncode != 0 and "--cgroup" in refused.stderr
    refused = rt("update", "--l3-cache-schema", "L3:0=f", b2.id, check=False)
    assert refused.returncode != 0 and "resctrl" in refused.stderr
