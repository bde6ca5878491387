"""The engine drives any runc-compatible runtime through its command line: the same
behaviour with runc as with Corral's own runtime (the whole suite runs on runc with
CORRAL_TEST_ENGINE_RUNTIME=runc; this is the part CI always runs)."""

from __future__ import annotations

import shutil

import pytest

from tests.integration.engine.conftest import IMAGE, Corral

pytestmark = pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")


def test_runc_runs_stops_and_reports(corral: Corral) -> None:
    assert (
        corral("run", "--rm", "--runtime", "runc", IMAGE, "echo", "via runc").stdout == "via runc\n"
    )
    assert (
        corral(
            "run", "--rm", "--runtime", "runc", IMAGE, "sh", "-c", "exit 4", check=False
        ).returncode
        == 4
    )
    assert corral("run", "--rm", "--runtime", "runc", IMAGE, "nope", check=False).returncode == 127
    corral("run", "-d", "--name", "t-runc", "--runtime", "runc", "-m", "32m", IMAGE, "sleep", "100")
    doc = corral.inspect("t-runc")
    assert doc["HostConfig"]["Runtime"] == "runc" and doc["State"]["Running"]
    assert corral("exec", "t-runc", "cat", "/proc/1/cmdline").stdout.startswith("sleep")
    corral("stop", "-t", "1", "t-runc")
    assert corral.inspect("t-runc")["State"]["ExitCode"] == 137
    oom = corral(
        "run",
        "--runtime",
        "runc",
        "--name",
        "t-runc-oom",
        "-m",
        "32m",
        "--memory-swap",
        "32m",
        IMAGE,
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a)",
        check=False,
    )
    assert oom.returncode == 137 and corral.inspect("t-runc-oom")["State"]["OOMKilled"]
