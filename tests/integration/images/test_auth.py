"""Authenticated registries: htpasswd basic auth, the Bearer token flow (a token server in
the test, the registry real), TLS; credentials from a docker-style config file."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.errors import RegistryAuthError
from corral.image.pull import PullOptions, pull
from corral.image.store import Store
from tests.images import Layout, RegistryServer, TokenServer, htpasswd, make_cert, registry, tar_of
from tests.integration.images.conftest import corral

USER, PASSWORD = "alice", "s3cret-pw"


def _layout(tmp: Path) -> Path:
    layout = Layout(tmp / "layout")
    layout.tag(layout.manifest([tar_of([("hello", b"from a private registry", {})])]), "v1")
    return layout.root


def _authfile(path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    tmp = tmp_path_factory.mktemp("basic")
    htpasswd(tmp / "htpasswd", USER, PASSWORD)
    auth = {"htpasswd": {"realm": "corral-test", "path": str(tmp / "htpasswd")}}
    with registry(tmp / "server", auth=auth) as server:
        server.push(_layout(tmp), "v1", "private/app:v1", creds=f"{USER}:{PASSWORD}")
        yield server


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryServer, TokenServer]]:
    tmp = tmp_path_factory.mktemp("token")
    tokens = TokenServer(tmp, USER, PASSWORD)
    try:
        with registry(tmp / "server", auth=tokens.registry_auth()) as server:
            server.push(_layout(tmp), "v1", "private/app:v1", creds=f"{USER}:{PASSWORD}")
            yield server, tokens
    finally:
        tokens.stop()


def test_basic_auth_without_credentials_is_a_clear_error(
    basic_registry: RegistryServer, store: Store, tmp_path: Path
) -> None:
    empty = tmp_path / "none.json"
    empty.write_text("{}")
    with pytest.raises(RegistryAuthError, match="requires a login"):
        pull(
            store, f"{basic_registry.host}/private/app:v1", options=PullOptions(authfile=str(empty))
        )


def test_basic_auth_with_config_file(
    basic_registry: RegistryServer, store: Store, tmp_path: Path
) -> None:
    authfile = _authfile(tmp_path / "auth.json", basic_registry.host)
    img = pull(
        store, f"{basic_registry.host}/private/app:v1", options=PullOptions(authfile=str(authfile))
    )
    assert (
        Path(store.layer_path(img.diff_ids[0])) / "hello"
    ).read_bytes() == b"from a private registry"


def test_basic_auth_wrong_password(
    basic_registry: RegistryServer, store: Store, tmp_path: Path
) -> None:
    authfile = _authfile(tmp_path / "auth.json", basic_registry.host, password="wrong")
    with pytest.raises(RegistryAuthError, match="denied as 'alice'"):
        pull(
            store,
            f"{basic_registry.host}/private/app:v1",
            options=PullOptions(authfile=str(authfile)),
        )


def test_login_then_pull_then_logout(
    basic_registry: RegistryServer, data_root: Path, tmp_path: Path
) -> None:
    authfile = tmp_path / "corral-auth.json"
    bad = corral(
        data_root,
        "login",
        "-u",
        USER,
        "-p",
        "nope",
        "--authfile",
        str(authfile),
        basic_registry.host,
        check=False,
    )
    assert bad.returncode != 0 and not authfile.exists()
    ok = corral(
        data_root,
        "login",
        "-u",
        USER,
        "--password-stdin",
        "--authfile",
        str(authfile),
        basic_registry.host,
        input=PASSWORD + "\n",
    )
    assert "Login Succeeded" in ok.stdout
    assert authfile.stat().st_mode & 0o777 == 0o600
    corral(data_root, "pull", "--authfile", str(authfile), f"{basic_registry.host}/private/app:v1")
    corral(data_root, "logout", "--authfile", str(authfile), basic_registry.host)
    assert basic_registry.host not in json.loads(authfile.read_text())["auths"]


def test_bearer_token_flow(
    token_registry: tuple[RegistryServer, TokenServer], store: Store, tmp_path: Path
) -> None:
    server, tokens = token_registry
    authfile = _authfile(tmp_path / "auth.json", server.host)
    issued = tokens.issued
    img = pull(store, f"{server.host}/private/app:v1", options=PullOptions(authfile=str(authfile)))
    assert store.has_layer(img.diff_ids[0])
    assert tokens.issued == issued + 1  # one token per repository scope, reused for every blob


def test_bearer_token_refused(
    token_registry: tuple[RegistryServer, TokenServer], store: Store, tmp_path: Path
) -> None:
    server, _ = token_registry
    authfile = _authfile(tmp_path / "auth.json", server.host, password="wrong")
    with pytest.raises(RegistryAuthError, match="refused the credentials"):
        pull(store, f"{server.host}/private/app:v1", options=PullOptions(authfile=str(authfile)))


def test_https_registry(tmp_path: Path, store: Store) -> None:
    cert, key, _ = make_cert(tmp_path, "registry-tls")
    with registry(tmp_path / "server", tls=(cert, key)) as server:
        import subprocess

        subprocess.run(
            [
                "skopeo",
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{_layout(tmp_path)}:v1",
                f"docker://{server.host}/tls/app:v1",
            ],
            check=True,
            capture_output=True,
        )
        img = pull(store, f"{server.host}/tls/app:v1")
        assert store.has_layer(img.diff_ids[0])
        from corral.image.registry import Registry

        client = Registry(server.host)
        try:
            assert client._base() == "https"  # this server speaks nothing else
        finally:
            client.close()


def test_plain_http_only_for_insecure_registries(seeded: RegistryServer) -> None:
    from corral.image.registry import Registry, is_insecure

    client = Registry(seeded.host)
    try:
        assert client._base() == "http"  # loopback: HTTPS tried first, then HTTP
    finally:
        client.close()
    assert not is_insecure("registry.example.com:5000")
    assert is_insecure("registry.example.com:5000", ["registry.example.com:5000"])
    assert is_insecure("localhost:5000") and is_insecure("[::1]:5000")
