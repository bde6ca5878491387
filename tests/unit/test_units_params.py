from __future__ import annotations

import pytest

from corral.cgroups import UNLIMITED, Resources, parse_bytes, parse_params
from corral.cgroups.params import files_for, parse_param
from corral.cgroups.resources import DeviceRule, Throttle
from corral.cgroups.units import expand_cpu_list, format_bytes, parse_cpu_list
from corral.errors import CgroupInvalid


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("64M", 64 << 20),
        ("64m", 64 << 20),
        ("64MiB", 64 << 20),
        ("64MB", 64 << 20),
        ("1.5G", 3 << 29),
        ("512k", 512 << 10),
        ("max", UNLIMITED),
        ("-1", UNLIMITED),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["12XB", "", "M", "64 Q", "1..2M", "iB", "-5"])
def test_parse_bytes_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupInvalid, match="malformed"):
        parse_bytes(text)


def test_malformed_memory_names_the_value() -> None:
    with pytest.raises(CgroupInvalid, match=r"malformed memory limit '12XB'"):
        parse_params(["memory=12XB"], 1)


def test_format_bytes() -> None:
    assert format_bytes(64 << 20) == "64.0MiB"
    assert format_bytes(100) == "100B"
    assert format_bytes(UNLIMITED) == "max"
    assert format_bytes(None) == "-"


def test_cpu_lists() -> None:
    assert parse_cpu_list("0-2,4", "cpus") == "0-2,4"
    assert expand_cpu_list("0-2,4") == {0, 1, 2, 4}
    with pytest.raises(CgroupInvalid):
        parse_cpu_list("0-", "cpus")


def test_model_names() -> None:
    r = parse_params(["memory=64M", "cpus=0.5", "pids=20", "cpuset-cpus=0"], 1)
    assert r.memory_limit == 64 << 20
    assert (r.cpu_quota, r.cpu_period) == (50_000, 100_000)
    assert r.pids_limit == 20
    assert r.cpuset_cpus == "0"


@pytest.mark.parametrize("version", [1, 2])
def test_kernel_names_of_both_versions_map_to_the_model(version: int) -> None:
    a = parse_params(["memory.limit_in_bytes=32M", "cpu.shares=512"], version)
    b = parse_params(["memory.max=32M", "cpu.weight=20"], version)
    assert a.memory_limit == b.memory_limit == 32 << 20
    assert a.cpu_shares == 512 and b.cpu_weight == 20


def test_cpu_max_and_pids_max() -> None:
    r = parse_params(["cpu.max=20000 100000", "pids.max=max"], 2)
    assert (r.cpu_quota, r.cpu_period, r.pids_limit) == (20_000, 100_000, UNLIMITED)
    assert parse_params(["cpu.max=max"], 2).cpu_quota == UNLIMITED


def test_devices_and_throttles() -> None:
    r = parse_params(["device-deny=c 1:3 rwm", "device-read-bps=8:0 1M"], 1)
    assert r.devices == (DeviceRule(False, "c", 1, 3, "rwm"),)
    assert r.throttles == (Throttle("read_bps", 8, 0, 1 << 20),)
    io = parse_params(["io.max=8:16 rbps=100 wiops=max"], 2)
    assert io.throttles == (
        Throttle("read_bps", 8, 16, 100),
        Throttle("write_iops", 8, 16, UNLIMITED),
    )
    assert DeviceRule(True, "a").v1_line() == "a"
    assert DeviceRule(True, "b", 8, None, "r").v1_line() == "b 8:* r"


def test_raw_passthrough_and_hugetlb() -> None:
    r = parse_params(["memory.swappiness=10", "hugetlb.2MB.limit_in_bytes=4M"], 1)
    assert r.raw == (("memory.swappiness", "10"),)
    assert r.hugetlb == (("2MB", 4 << 20),)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("bogus=1", "unknown parameter 'bogus'"),
        ("memory", "expected KEY=VALUE"),
        ("=5", "expected KEY=VALUE"),
        ("cpus=-1", "cpus must be positive"),
        ("cpu-shares=1", "below the minimum"),
        ("pids=ten", "malformed pids limit"),
        ("device-deny=x 1:3", "malformed device rule"),
        ("Memory.Max=1", "unknown parameter"),
    ],
)
def test_bad_params(item: str, message: str) -> None:
    with pytest.raises(CgroupInvalid, match=message):
        parse_params([item], 1)


def test_swap_only_key_is_refused_on_v1() -> None:
    with pytest.raises(CgroupInvalid, match="memory-swap"):
        parse_param("memory.swap.max", "1G", 1)


def test_later_items_win_and_tuples_accumulate() -> None:
    r = parse_params(["memory=1G", "memory=2G", "device-deny=a", "device-allow=c 1:3 rw"], 1)
    assert r.memory_limit == 2 << 30
    assert len(r.devices) == 2
    assert Resources().is_empty()


def test_files_for_translates_between_versions() -> None:
    assert files_for("memory.max", 1) == ("memory.limit_in_bytes",)
    assert files_for("memory.limit_in_bytes", 2) == ("memory.max",)
    assert files_for("cpu.shares", 2) == ("cpu.weight",)
    assert files_for("cpus", 1) == ("cpu.cfs_quota_us", "cpu.cfs_period_us")
    assert files_for("memory.swappiness", 1) == ("memory.swappiness",)
