"""The v2 backend over a temporary directory tree shaped like cgroupfs.

A real v2 kernel runs the same backend in the VM tier (issue 8); here we check what it
writes where, and how it reads what the kernel reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.cgroups import Hierarchy, HostLayout, Mode, parse_params
from corral.cgroups import fs as cgfs
from corral.cgroups.manager import FreezerState
from corral.cgroups.v2 import V2Manager
from corral.errors import CgroupBusy, CgroupInvalid, CgroupUnsupported

CONTROLLERS = "cpuset cpu io memory hugetlb pids"
GROUP_FILES = {
    "cgroup.controllers": CONTROLLERS,
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.kill": "",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "memory.current": "0",
    "memory.peak": "0",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max",
    "pids.current": "0",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "",
    "hugetlb.2MB.max": "max",
}


def _populate(d: Path) -> None:
    for name, content in GROUP_FILES.items():
        (d / name).write_text(content)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    _populate(root)
    real_make_dir = cgfs.make_dir

    def make_dir(path: str) -> bool:
        made = real_make_dir(path)
        if made:
            _populate(Path(path))  # the kernel fills a new group with its files
        return made

    def remove_dir(path: str, attempts: int = 50) -> None:
        for f in Path(path).iterdir():
            f.unlink()
        Path(path).rmdir()

    monkeypatch.setattr(cgfs, "make_dir", make_dir)
    monkeypatch.setattr(cgfs, "remove_dir", remove_dir)
    return root


def _manager(root: Path, own: str = "/") -> V2Manager:
    h = Hierarchy(0, 2, str(root), "/", tuple(CONTROLLERS.split()))
    layout = HostLayout(Mode.V2, (h,), (), {"": own})
    return V2Manager(layout, "corral")


def test_create_enables_controllers_top_down_and_writes_limits(tree: Path) -> None:
    m = _manager(tree)
    r = parse_params(
        [
            "memory=64M",
            "memory-swap=96M",
            "cpu-shares=1024",
            "cpus=0.5",
            "pids=10",
            "blkio-weight=500",
            "cpuset-cpus=0",
            "device-write-bps=8:0 1M",
            "hugetlb.2MB=4M",
        ],
        1,
    )
    m.create("web/app", r)
    for level in (tree, tree / "corral", tree / "corral" / "web"):
        enabled = (level / "cgroup.subtree_control").read_text().split()
        assert {"+memory", "+cpu", "+pids", "+io", "+cpuset"} <= set(enabled), level
    d = tree / "corral" / "web" / "app"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == str(32 << 20)
    assert (d / "cpu.weight").read_text() == "100"  # shares 1024 -> weight 100
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "pids.max").read_text() == "10"
    assert (d / "io.weight").read_text() == f"default {1 + 490 * 9999 // 990}"
    assert (d / "io.max").read_text() == "8:0 wbps=1048576"
    assert (d / "cpuset.cpus").read_text() == "0"
    assert (d / "hugetlb.2MB.max").read_text() == str(4 << 20)
    assert m.exists("web/app") and m.children("web") == ["web/app"]
    assert m.cgroup_path("web/app") == "/corral/web/app"


def test_partial_cpu_max_keeps_the_other_half(tree: Path) -> None:
    m = _manager(tree)
    m.create("g")
    (tree / "corral" / "g" / "cpu.max").write_text("20000 50000")
    m.apply("g", parse_params(["cpu-period=100000"], 2))
    assert (tree / "corral" / "g" / "cpu.max").read_text() == "20000 100000"


def test_nested_parent_under_own_cgroup(tree: Path) -> None:
    (tree / "user.slice").mkdir()
    _populate(tree / "user.slice")
    m = _manager(tree, own="/user.slice")
    m.create("g")
    assert (tree / "user.slice" / "corral" / "g").is_dir()
    assert "+memory" in (tree / "user.slice" / "cgroup.subtree_control").read_text()


def test_device_rules_become_an_ebpf_program(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attached: list[tuple[str, int]] = []

    def attach(self: V2Manager, name: str, resources: object) -> None:
        attached.append((name, len(resources.devices)))  # type: ignore[attr-defined]

    monkeypatch.setattr(V2Manager, "_attach_device_program", attach)
    m = _manager(tree)
    m.create("g", parse_params(["device-deny=c 1:3 rwm"], 2))
    assert attached == [("g", 1)]


def test_unknown_file_is_a_clear_error_and_rolls_back(tree: Path) -> None:
    m = _manager(tree)
    with pytest.raises(CgroupInvalid, match=r"unknown parameter 'memory\.bogus'"):
        m.create("g", parse_params(["memory.bogus=1"], 2))
    assert not m.exists("g")


def test_unavailable_controller(tree: Path) -> None:
    m = _manager(tree)
    with pytest.raises(CgroupUnsupported, match="'rdma' is not available"):
        m.create("g", controllers=["rdma"])


def test_add_process_and_tasks(tree: Path) -> None:
    m = _manager(tree)
    m.create("g")
    m.add_process("g", os.getpid())
    assert (tree / "corral" / "g" / "cgroup.procs").read_text() == str(os.getpid())
    assert m.tasks("g") == [os.getpid()]
    with pytest.raises(CgroupBusy, match="still has 1 task"):
        m.delete("g")


def test_stats_parse_the_v2_files(tree: Path) -> None:
    m = _manager(tree)
    m.create("g")
    d = tree / "corral" / "g"
    (d / "cpu.stat").write_text(
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_throttled 3\nthrottled_usec 7\n"
    )
    (d / "memory.current").write_text("4096\n")
    (d / "memory.peak").write_text("8192\n")
    (d / "memory.max").write_text("33554432\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.max").write_text("10\n")
    (d / "io.stat").write_text("8:0 rbytes=100 wbytes=200 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n")
    st = m.stats("g")
    assert (st.cpu_usage_ns, st.cpu_user_ns, st.cpu_system_ns) == (1_500_000, 1_000_000, 500_000)
    assert (st.cpu_throttled_periods, st.cpu_throttled_ns) == (3, 7000)
    assert (st.memory_usage, st.memory_peak, st.memory_limit) == (4096, 8192, 32 << 20)
    assert (st.oom_events, st.oom_kills) == (2, 1)
    assert (st.pids_current, st.pids_limit) == (3, 10)
    assert (st.io_read_bytes, st.io_write_bytes) == (101, 202)


def test_freeze_waits_for_the_kernel(tree: Path) -> None:
    m = _manager(tree)
    m.create("g")
    d = tree / "corral" / "g"
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # as the kernel would report
    m.freeze("g")
    assert (d / "cgroup.freeze").read_text() == "1"
    assert m.freezer_state("g") == FreezerState.FROZEN


def test_kill_uses_cgroup_kill(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _manager(tree)
    m.create("g")
    d = tree / "corral" / "g"
    (d / "cgroup.procs").write_text("4242\n")
    real_write = cgfs.write

    def write(path: str, value: str) -> None:
        real_write(path, value)
        if path.endswith("cgroup.kill"):
            (d / "cgroup.procs").write_text("")  # what the kernel does

    monkeypatch.setattr(cgfs, "write", write)
    m.kill("g")
    assert (d / "cgroup.kill").read_text() == "1"
    assert m.tasks("g") == []
