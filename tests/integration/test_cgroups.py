"""cgroups on the real kernel: limits that the kernel enforces, the article's rules, and
bad input that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from corral.cgroups import Manager, Mode, detect, parse_params, parse_proc_pid_cgroup
from corral.cgroups.manager import FreezerState
from corral.errors import CgroupBusy, CgroupInvalid, CgroupNotFound, KernelError
from tests.helpers import wait_until

from .conftest import Child


def _version(m: Manager) -> int:
    return 2 if m.mode == Mode.V2 else 1


def _own_groups(pid: int) -> dict[str, str]:
    return parse_proc_pid_cgroup(Path(f"/proc/{pid}/cgroup").read_text())


def test_memory_limit_oom_kills_and_is_counted(
    manager: Manager, group: str, spawn: type[Child]
) -> None:
    manager.create(group, parse_params(["memory=32M", "memory-swap=32M"], _version(manager)))
    child = spawn("data = b'x' * (100 << 20)\nprint('survived', len(data))\n")
    manager.add_process(group, child.pid)
    child.go()
    code, out, _ = child.finish()
    assert code == -signal.SIGKILL and "survived" not in out
    st = manager.stats(group)
    assert st.oom_kills is not None and st.oom_kills >= 1
    assert st.memory_limit == 32 << 20
    assert st.memory_peak is not None and st.memory_peak <= 32 << 20


def test_pids_limit_stops_a_fork_loop(manager: Manager, group: str, spawn: type[Child]) -> None:
    manager.create(group, parse_params(["pids=10"], _version(manager)))
    child = spawn(
        "n, kids = 1, []\n"
        "while n < 50:\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "    kids.append(pid); n += 1\n"
        "print(n, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    manager.add_process(group, child.pid)
    child.go()
    assert child.proc.stdout is not None
    tasks = int(child.proc.stdout.readline())
    assert tasks == 10
    st = manager.stats(group)
    assert st.pids_current == 10 and st.pids_limit == 10
    # The host is unaffected: it can still start processes.
    assert subprocess.run(["true"]).returncode == 0
    manager.kill(group)
    manager.wait_empty(group)


def test_cpu_quota_holds_a_busy_loop_near_the_quota(
    manager: Manager, group: str, spawn: type[Child]
) -> None:
    manager.create(group, parse_params(["cpus=0.2"], _version(manager)))
    child = spawn("end = time.time() + 3\nwhile time.time() < end:\n    pass\n")
    manager.add_process(group, child.pid)
    before = manager.stats(group).cpu_usage_ns or 0
    start = time.monotonic()
    child.go()
    child.finish()
    wall = time.monotonic() - start
    st = manager.stats(group)
    share = ((st.cpu_usage_ns or 0) - before) / 1e9 / wall
    assert 0.12 < share < 0.3, f"measured {share:.2f} CPU with a 0.2 quota"
    assert st.cpu_throttled_periods and st.cpu_throttled_periods > 0


def _has_controller(name: str) -> bool:
    layout = detect()
    if layout.mode == Mode.V2:
        return layout.unified is not None and name in layout.unified.subsystems
    return layout.hierarchy_of(name) is not None


def test_cpuset_shows_in_affinity(manager: Manager, group: str, spawn: type[Child]) -> None:
    if not _has_controller("cpuset"):
        pytest.skip("no cpuset controller on this kernel (User-Mode Linux has none)")
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]
    manager.create(group, parse_params([f"cpuset-cpus={cpu}"], _version(manager)))
    child = spawn("print(sorted(os.sched_getaffinity(0)), flush=True)\n")
    manager.add_process(group, child.pid)
    assert os.sched_getaffinity(child.pid) == {cpu}
    child.go()
    _, out, _ = child.finish()
    assert out.strip() == str([cpu])


def test_freeze_stops_progress_and_thaw_resumes(
    manager: Manager, group: str, spawn: type[Child]
) -> None:
    manager.create(group)
    child = spawn(
        "n = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.01)\n"
    )
    manager.add_process(group, child.pid)
    child.go()
    assert child.proc.stdout is not None
    child.proc.stdout.readline()
    manager.freeze(group)
    assert manager.freezer_state(group) == FreezerState.FROZEN
    time.sleep(0.1)
    progress_file = Path(f"/proc/{child.pid}/stat")
    ticks = progress_file.read_text().split()[13:15]
    time.sleep(0.4)
    assert progress_file.read_text().split()[13:15] == ticks, "frozen process kept running"
    manager.thaw(group)
    assert manager.freezer_state(group) == FreezerState.THAWED
    assert wait_until(lambda: progress_file.read_text().split()[13:15] != ticks, 5)
    manager.kill(group)


def test_device_deny_makes_open_fail(manager: Manager, group: str, spawn: type[Child]) -> None:
    # v1: devices.deny; v2: an eBPF device program. The rules mean the same on both.
    rules = ["device-allow=a", "device-deny=c 1:3 rwm"]
    manager.create(group, parse_params(rules, _version(manager)))
    child = spawn(
        "try:\n    open('/dev/null', 'w')\n    print('opened')\n"
        "except PermissionError:\n    print('denied')\n"
        "open('/dev/zero', 'rb').read(1)\nprint('zero ok')\n"
    )
    manager.add_process(group, child.pid)
    child.go()
    _, out, err = child.finish()
    assert out.splitlines() == ["denied", "zero ok"], err


def test_rule3_one_group_per_hierarchy_and_rule4_inheritance(
    manager: Manager, group: str, spawn: type[Child]
) -> None:
    layout = detect()
    manager.create(f"{group}/a")
    manager.create(f"{group}/b")
    child = spawn(
        "pid = os.fork()\n"
        "if pid == 0:\n    time.sleep(60)\n    os._exit(0)\n"
        "print(pid, flush=True)\nsys.stdin.readline()\n"
    )
    manager.add_process(f"{group}/a", child.pid)
    # Rule 3: exactly one line (one group) per mounted hierarchy.
    lines = Path(f"/proc/{child.pid}/cgroup").read_text().splitlines()
    ids = [line.split(":", 1)[0] for line in lines]
    assert len(ids) == len(set(ids))
    parent_groups = _own_groups(child.pid)
    path_a = manager.cgroup_path(f"{group}/a")
    if layout.mode == Mode.V2:
        assert parent_groups[""] == path_a
    else:
        for h in manager.layout.v1:
            if h.subsystems:
                key = ",".join(h.subsystems)
                assert parent_groups[key].endswith(f"{group}/a"), (key, parent_groups[key])
    child.go()
    assert child.proc.stdout is not None
    grandchild = int(child.proc.stdout.readline())
    # Rule 4: a forked child starts in its parent's groups ...
    assert _own_groups(grandchild) == parent_groups
    # ... and can then be moved on its own.
    manager.add_process(f"{group}/b", grandchild)
    moved = _own_groups(grandchild)
    assert moved != parent_groups
    assert _own_groups(child.pid) == parent_groups
    assert manager.tasks(f"{group}/b") == [grandchild]
    assert sorted(manager.tasks(group, recursive=True)) == sorted([child.pid, grandchild])
    manager.delete(group, force=True)
    assert not manager.exists(group)
    assert child.proc.wait(10) == -signal.SIGKILL


def test_delete_refuses_a_busy_group_unless_forced(
    manager: Manager, group: str, spawn: type[Child]
) -> None:
    manager.create(group)
    child = spawn("time.sleep(60)\n")
    manager.add_process(group, child.pid)
    with pytest.raises(CgroupBusy, match=f"still has 1 task.*{child.pid}"):
        manager.delete(group)
    assert manager.exists(group)
    manager.delete(group, force=True)
    assert not manager.exists(group)
    assert child.proc.wait(10) == -signal.SIGKILL


def test_set_get_and_cross_version_names(manager: Manager, group: str) -> None:
    v = _version(manager)
    manager.create(group, parse_params(["memory=64M", "cpu-shares=512", "pids=30"], v))
    if v == 1:
        assert manager.get(group, "memory.limit_in_bytes") == str(64 << 20)
        assert manager.get(group, "cpu.shares") == "512"
        # A v2 name is translated for this v1 host (cpu.weight 100 -> the default 1024 shares).
        manager.apply(group, parse_params(["memory.max=48M", "cpu.weight=100"], v))
        assert manager.get(group, "memory.limit_in_bytes") == str(48 << 20)
        assert int(manager.get(group, "cpu.shares")) <= 1024
    else:
        assert manager.get(group, "memory.max") == str(64 << 20)
        manager.apply(group, parse_params(["memory.limit_in_bytes=48M", "cpu.shares=1024"], v))
        assert manager.get(group, "memory.max") == str(48 << 20)
        assert manager.get(group, "cpu.weight") == "100"
    assert manager.get(group, "pids.max") == "30"
    params = manager.parameters(group)
    assert "pids.max" in params


def test_kernel_rejections_are_clear(manager: Manager, group: str) -> None:
    manager.create(group)
    with pytest.raises(CgroupInvalid, match=r"unknown parameter 'memory\.nonsense'"):
        manager.set(group, "memory.nonsense", "1")
    with pytest.raises(CgroupInvalid, match="kernel rejected"):
        manager.set(group, "pids.max", "-5")


def test_bad_input_creates_nothing(manager: Manager) -> None:
    v = _version(manager)
    with pytest.raises(CgroupInvalid, match=r"unknown parameter 'memory\.bogus'"):
        manager.create("bad1", parse_params(["memory.bogus=1"], v))
    assert not manager.exists("bad1")
    for path in ("../escape", "a/../../b", "/sys/fs/cgroup/memory"):
        with pytest.raises(CgroupInvalid):
            manager.create(path)
    with pytest.raises(CgroupNotFound, match="no such group 'missing'"):
        manager.add_process("missing", os.getpid())
    assert not manager.exists("missing")
    manager.create("bad2")
    try:
        with pytest.raises(KernelError, match="pid 999999999"):
            manager.add_process("bad2", 999_999_999)
    finally:
        manager.delete("bad2")
    assert manager.children() == []


def test_nested_groups_delete_recursively(manager: Manager, group: str) -> None:
    manager.create(f"{group}/x/y")
    assert manager.children(group) == [f"{group}/x"]
    manager.delete(group)
    assert not manager.exists(group)


def test_kill_with_other_signal(manager: Manager, group: str, spawn: type[Child]) -> None:
    manager.create(group)
    child = spawn("time.sleep(60)\n")
    manager.add_process(group, child.pid)
    child.go()
    manager.kill(group, signal.SIGTERM)
    assert child.proc.wait(10) == -signal.SIGTERM


def _root_disk() -> tuple[int, int] | None:
    """major:minor of the whole disk holding / (throttles apply to disks, not partitions)."""
    dev = os.stat("/").st_dev
    sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sys_dev.exists():
        return None
    if (sys_dev / "partition").exists():
        major, minor = (sys_dev.resolve().parent / "dev").read_text().split(":")
        return int(major), int(minor)
    return os.major(dev), os.minor(dev)


def test_io_throttle_and_io_stats(manager: Manager, group: str, tmp_path: Path) -> None:
    """Direct I/O through a throttled disk is counted (io.max / blkio.throttle, io stats).
    On this host: a file on the root filesystem's disk. In the v2 guest, whose root is no
    block device: the scratch disk the guest runner attaches (CORRAL_TEST_BLOCK_DEVICE)."""
    scratch = os.environ.get("CORRAL_TEST_BLOCK_DEVICE")
    if scratch:
        major, minor = (int(x) for x in scratch.split(":"))
        target = tmp_path / "disk"
        os.mknod(target, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
    else:
        disk = _root_disk()
        if disk is None:
            pytest.skip("/ is not on a block device")
        major, minor = disk
        target = tmp_path / "data"  # a file on the root filesystem: direct I/O hits the disk
    v = _version(manager)
    manager.create(group, parse_params([f"device-write-bps={major}:{minor} 8M"], v))
    if v == 1:
        line = manager.get(group, "blkio.throttle.write_bps_device")
        assert line == f"{major}:{minor} {8 << 20}"
    else:
        assert f"wbps={8 << 20}" in manager.get(group, "io.max")
    child = subprocess.Popen(
        ["sh", "-c", f"read go; exec dd if=/dev/zero of={target} bs=64k count=16 oflag=direct"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    manager.add_process(group, child.pid)
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.close()
    assert child.wait(30) == 0
    st = manager.stats(group)
    assert st.io_write_bytes is not None and st.io_write_bytes >= 1 << 20
