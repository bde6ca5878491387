from __future__ import annotations

import pytest

from corral.cgroups.resources import (
    blkio_weight_to_io_weight,
    cpus_to_quota,
    io_weight_to_blkio_weight,
    parse_device_rule,
    shares_to_weight,
    swap_for_v2,
    weight_to_shares,
)
from corral.cgroups.units import UNLIMITED
from corral.errors import CgroupInvalid


def test_shares_to_weight_fixed_points() -> None:
    # runc/crun's current conversion maps min, default and max onto each other.
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 100
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(512) < 100 < shares_to_weight(2048)


def test_weight_to_shares_inverts() -> None:
    for shares in (2, 3, 100, 512, 1024, 2048, 50000, 262144):
        weight = shares_to_weight(shares)
        back = weight_to_shares(weight)
        assert shares_to_weight(back) == weight
    assert weight_to_shares(100) <= 1024
    with pytest.raises(CgroupInvalid):
        weight_to_shares(0)


def test_blkio_weight_conversion_is_runc_linear() -> None:
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990
    for w in (10, 100, 500, 1000):
        assert io_weight_to_blkio_weight(blkio_weight_to_io_weight(w)) == w


def test_swap_for_v2() -> None:
    assert swap_for_v2(UNLIMITED, 100) == UNLIMITED
    assert swap_for_v2(300, 100) == 200
    with pytest.raises(CgroupInvalid, match="below the memory limit"):
        swap_for_v2(50, 100)
    with pytest.raises(CgroupInvalid, match="needs a memory limit"):
        swap_for_v2(50, None)


def test_cpus_to_quota() -> None:
    assert cpus_to_quota(0.2) == (20_000, 100_000)
    assert cpus_to_quota(1.5) == (150_000, 100_000)


def test_device_rule_parse() -> None:
    rule = parse_device_rule("c *:* m", allow=True)
    assert (rule.type, rule.major, rule.minor, rule.access) == ("c", None, None, "m")
    with pytest.raises(CgroupInvalid):
        parse_device_rule("c 1:3 rwwx", allow=True)
