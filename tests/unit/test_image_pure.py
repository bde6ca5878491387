"""Pure logic of the image layer: references, platforms, auth challenges and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.image import auth, reference
from corral.image.reference import ReferenceError
from corral.oci.image import ImageFormatError, parse_platform, pick_manifest


@pytest.mark.parametrize(
    ("text", "expected", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("team/app:1.2", "docker.io/team/app:1.2", "team/app:1.2"),
        ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
        ("quay.io/org/img", "quay.io/org/img:latest", "quay.io/org/img:latest"),
        ("index.docker.io/library/debian:12", "docker.io/library/debian:12", "debian:12"),
        (
            "busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "busybox@sha256:" + "a" * 64,
        ),
    ],
)
def test_reference_normalisation(text: str, expected: str, familiar: str) -> None:
    ref = reference.parse(text)
    assert str(ref) == expected
    assert ref.familiar() == familiar


def test_docker_hub_api_host() -> None:
    assert reference.parse("busybox").api_host == "registry-1.docker.io"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Busybox", "lower case"),
        ("busybox:", "bad tag"),
        ("busybox@sha256:abc", "bad digest"),
        ("a//b", "bad name component"),
        ("", "invalid"),
        ("x:-tag", "bad tag"),
    ],
)
def test_bad_references_are_named(text: str, problem: str) -> None:
    with pytest.raises(ReferenceError, match=problem):
        reference.parse(text)


INDEX = {
    "manifests": [
        {
            "digest": "sha256:" + "1" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "digest": "sha256:" + "2" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "arm", "variant": "v6"},
        },
        {
            "digest": "sha256:" + "3" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
        },
        {
            "digest": "sha256:" + "4" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "arm64"},
        },
        {
            "digest": "sha256:" + "5" * 64,
            "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"},
        },
    ]
}


@pytest.mark.parametrize(
    ("want", "digit"),
    [("linux/amd64", "1"), ("linux/arm/v7", "3"), ("linux/arm/v6", "2"), ("linux/arm64/v8", "4")],
)
def test_platform_pick(want: str, digit: str) -> None:
    assert pick_manifest(INDEX, parse_platform(want))["digest"] == "sha256:" + digit * 64


def test_platform_missing_lists_what_is_offered() -> None:
    with pytest.raises(ImageFormatError, match=r"linux/riscv64.*offers: linux/amd64, linux/arm/v6"):
        pick_manifest(INDEX, parse_platform("linux/riscv64"))


def test_challenge_parsing() -> None:
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert auth.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_credentials_file_lookup(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": "dTpw"},  # u:p
                    "reg.example:5000": {"username": "me", "password": "pw"},
                }
            }
        )
    )
    assert auth.lookup("docker.io", str(path)) == auth.Credentials("u", "p")
    assert auth.lookup("reg.example:5000", str(path)) == auth.Credentials("me", "pw")
    assert auth.lookup("other.example", str(path)) is None
    path.write_text("{not json")
    with pytest.raises(auth.RegistryAuthError, match="not valid JSON"):
        auth.lookup("docker.io", str(path))


def test_cli_archive_formats_match_the_library() -> None:
    from corral.cli.image import ARCHIVE_FORMATS
    from corral.image.archive import FORMATS

    assert ARCHIVE_FORMATS == FORMATS
