"""`corral cgroup` as users type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from corral.cgroups import FreezerState, Manager, Mode, detect
from tests.conftest import corral_cmd


def corral(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*corral_cmd(), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_hierarchies_and_subsystems() -> None:
    layout = detect()
    out = corral("cgroup", "hierarchies", check=True).stdout
    assert f"cgroup mode: {layout.mode}" in out
    for h in layout.hierarchies:
        assert str(h.mountpoint) in out
    data = json.loads(corral("cgroup", "subsystems", "--json", check=True).stdout)
    names = {row["subsystem"] for row in data}
    assert {"memory", "pids"} <= names


def test_exec_runs_in_the_group_and_returns_the_exit_code(manager: Manager, group: str) -> None:
    result = corral(
        "cgroup",
        "exec",
        "--rm",
        group,
        "memory=64M",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup; exit 3",
    )
    assert result.returncode == 3, result.stderr
    assert f"{group}" in result.stdout
    assert "memory limit 64.0MiB" in result.stderr
    assert not manager.exists(group)  # --rm


def test_exec_signal_exit_code_and_not_found(manager: Manager, group: str) -> None:
    killed = corral("cgroup", "exec", "-q", group, "--", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 137
    missing = corral("cgroup", "exec", "-q", group, "--", "/no/such/cmd")
    assert missing.returncode == 127
    assert "/no/such/cmd: command not found" in missing.stderr
    corral("cgroup", "delete", group, check=True)


def test_create_set_get_stats_tree_delete(manager: Manager, group: str) -> None:
    corral("cgroup", "create", group, "memory=32M", "pids=20", check=True)
    corral("cgroup", "set", group, "memory=48M", "cpus=0.5", check=True)
    v2 = detect().mode == Mode.V2
    out = corral(
        "cgroup", "get", group, "memory.max", "memory.limit_in_bytes", "pids", check=True
    ).stdout
    mem_file = "memory.max" if v2 else "memory.limit_in_bytes"
    assert out.count(f"{mem_file}: {48 << 20}") == 2
    assert "pids.max: 20" in out
    stats = json.loads(corral("cgroup", "stats", "--json", group, check=True).stdout)
    assert stats["memory_limit"] == 48 << 20 and stats["pids_limit"] == 20
    table = corral("cgroup", "stats", group, check=True).stdout
    assert "memory limit" in table and "48.0MiB" in table
    tree = corral("cgroup", "tree", check=True).stdout
    assert group in tree
    corral("cgroup", "delete", group, check=True)
    assert not manager.exists(group)


def test_classify_tasks_freeze_thaw_kill(manager: Manager, group: str) -> None:
    corral("cgroup", "create", group, check=True)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        corral("cgroup", "classify", group, str(proc.pid), check=True)
        assert corral("cgroup", "tasks", group, check=True).stdout.split() == [str(proc.pid)]
        corral("cgroup", "freeze", group, check=True)
        assert manager.freezer_state(group) == FreezerState.FROZEN
        corral("cgroup", "thaw", group, check=True)
        assert manager.freezer_state(group) == FreezerState.THAWED
        corral("cgroup", "kill", "-s", "TERM", group, check=True)
        assert proc.wait(10) == -15
    finally:
        proc.kill()
        proc.wait()
    corral("cgroup", "delete", group, check=True)


def test_bad_input_is_named_and_nothing_is_created(manager: Manager) -> None:
    cases = [
        (("cgroup", "create", "bad", "memory=12XB"), "malformed memory limit '12XB'"),
        (("cgroup", "create", "bad", "nonsense=1"), "unknown parameter 'nonsense'"),
        (("cgroup", "create", "bad", "memory.nonsense=1"), "unknown parameter 'memory.nonsense'"),
        (("cgroup", "create", "../bad"), "contains '..'"),
        (("cgroup", "create", "/sys/fs/cgroup/bad"), "is absolute"),
        (("cgroup", "classify", "bad", "999999999"), "no such group 'bad'"),
        (("cgroup", "delete", "bad"), "no such group 'bad'"),
        (("cgroup", "set", "bad", "memory=1M"), "no such group 'bad'"),
        (("cgroup", "kill", "-s", "NOPE", "bad"), "unknown signal"),
    ]
    for args, message in cases:
        result = corral(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.startswith("corral: error: ")
    assert not manager.exists("bad")
    corral("cgroup", "create", "bad", check=True)
    result = corral("cgroup", "classify", "bad", "999999999")
    assert "pid 999999999" in result.stderr and result.returncode == 1
    corral("cgroup", "delete", "bad", check=True)
    assert manager.children() == []


def test_runtime_name_is_reserved() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "corral.cli.runtime", "--version"], capture_output=True, text=True
    ).stdout
    assert out.splitlines()[0].startswith("corral-runtime version ")
    assert out.splitlines()[2].startswith("spec: 1.")
    assert os.path.basename(sys.executable)
