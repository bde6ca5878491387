from __future__ import annotations

import pytest

from corral.cgroups import validate_group
from corral.errors import CgroupInvalid


def test_valid_paths_are_normalised() -> None:
    assert validate_group("a") == "a"
    assert validate_group("a//b/./c/") == "a/b/c"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../x", r"contains '\.\.'"),
        ("a/../../b", r"contains '\.\.'"),
        ("/sys/fs/cgroup/memory", "is absolute"),
        ("", "empty"),
        ("/", "empty"),
        ("a b", "may only use"),
        ("a/cgroup.procs", "control file"),
        ("x\ny", "may only use"),
    ],
)
def test_bad_paths(path: str, message: str) -> None:
    with pytest.raises(CgroupInvalid, match=message):
        validate_group(path)
