"""Test images and a real registry: OCI layouts built here from tar entries (busybox rootfs,
multi-layer images with whiteouts, zstd layers, multi-platform indexes), pushed with skopeo
into Debian's docker-registry running on 127.0.0.1 with its config and storage in a temp dir.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----- layers ----------------------------------------------------------------------------


def tar_of(entries: list[tuple[str, bytes | None, dict[str, Any]]]) -> bytes:
    """entries: (name, data or None for a directory, TarInfo attributes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            info.mtime = attrs.pop("mtime", 1_700_000_000)
            if data is None and "type" not in attrs:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            else:
                info.mode = 0o644
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_of_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(root), arcname=".")
    return buf.getvalue()


def compress(raw: bytes, kind: str) -> tuple[bytes, str]:
    if kind == "gzip":
        return gzip.compress(
            raw, compresslevel=1, mtime=0
        ), "application/vnd.oci.image.layer.v1.tar+gzip"
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(
            raw
        ), "application/vnd.oci.image.layer.v1.tar+zstd"
    return raw, "application/vnd.oci.image.layer.v1.tar"


class Layout:
    """An OCI image layout being written (what skopeo reads as `oci:DIR:TAG`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media: str) -> dict[str, Any]:
        digest = sha(data)
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media, "digest": digest, "size": len(data)}

    def manifest(
        self,
        layers: list[bytes],
        *,
        compression: str | list[str] = "gzip",
        cmd: list[str] | None = None,
        arch: str = "amd64",
        history: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        kinds = compression if isinstance(compression, list) else [compression] * len(layers)
        descs = []
        for raw, kind in zip(layers, kinds, strict=True):
            data, media = compress(raw, kind)
            descs.append(self.blob(data, media))
        config = {
            "created": "2026-11-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(raw) for raw in layers]},
            "history": history
            or [
                {"created": "2026-11-01T00:00:00Z", "created_by": f"layer {i}"}
                for i in range(len(layers))
            ],
        }
        cdesc = self.blob(json.dumps(config).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": descs}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        self.index.append({**desc, "annotations": {"org.opencontainers.image.ref.name": tag}})
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "manifests": self.index})
        )

    def multi_platform(self, per_arch: dict[str, dict[str, Any]]) -> dict[str, Any]:
        entries = []
        for plat, desc in per_arch.items():
            os_, arch, *variant = plat.split("/")
            p: dict[str, Any] = {"os": os_, "architecture": arch}
            if variant:
                p["variant"] = variant[0]
            entries.append({**desc, "platform": p})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.blob(json.dumps(index).encode(), OCI_INDEX)


# ----- the registry ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RegistryServer:
    def __init__(
        self,
        workdir: Path,
        auth: dict[str, Any] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "storage")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
        }
        if auth:
            config["auth"] = auth
        if tls:
            config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        (workdir / "config.yml").write_text(json.dumps(config))
        self.log = open(workdir / "registry.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(workdir / "config.yml")],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError((workdir / "registry.log").read_text()) from None
                time.sleep(0.05)

    def blob_gets(self, digest: str) -> list[str]:
        """Access-log lines of blob GETs for `digest` (status and size are in each line)."""
        self.log.flush()
        lines = (self.workdir / "registry.log").read_text().splitlines()
        return [line for line in lines if "GET /v2/" in line and f"/blobs/{digest}" in line]

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob (its filesystem driver's layout)."""
        hexd = digest[7:]
        return self.workdir / "storage/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def push(
        self,
        layout: Path,
        tag: str,
        repo: str,
        *,
        all_platforms: bool = False,
        creds: str | None = None,
    ) -> None:
        cmd = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
        if all_platforms:
            cmd.append("--all")
        if creds:
            cmd += ["--dest-creds", creds]
        cmd += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextmanager
def registry(workdir: Path, **kwargs: Any) -> Iterator[RegistryServer]:
    server = RegistryServer(workdir, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def htpasswd(path: Path, user: str, password: str) -> None:
    subprocess.run(["htpasswd", "-Bbc", str(path), user, password], check=True, capture_output=True)


# ----- a token server for the Bearer flow -------------------------------------------------


def make_cert(workdir: Path, name: str = "corral-test") -> tuple[Path, Path, Any]:
    """A self-signed EC certificate (for token signing or TLS on 127.0.0.1)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / f"{name}.crt", workdir / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, (key, cert)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry JWTs (ES256, x5c header) for whatever scope a user with the right
    password asks for; counts the tokens it issued."""

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        self.cert_path, _key_path, (self.key, self.cert) = make_cert(workdir, "token-signer")
        self.user, self.password = user, password
        self.issued = 0
        self.port = free_port()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                expected = (
                    "Basic "
                    + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                from urllib.parse import parse_qs, urlsplit

                query = parse_qs(urlsplit(self.path).query)
                token = server.token(query.get("service", [""])[0], query.get("scope", []))
                body = json.dumps({"token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": "corral-test-registry",
                "issuer": "corral-test-issuer",
                "rootcertbundle": str(self.cert_path),
            }
        }

    def token(self, service: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            kind, name, actions = (
                scope.split(":")[0],
                ":".join(scope.split(":")[1:-1]),
                scope.split(":")[-1],
            )
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": "corral-test-issuer",
            "sub": self.user,
            "aud": service,
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        self.issued += 1
        return f"{signing}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


class CuttingProxy:
    """A TCP proxy to a registry that cuts the first connection carrying more than
    `cut_after` bytes back to the client: a download dropped mid-blob."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if downstream and self.cuts == 0 and sent > self.cut_after:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self) -> None:
        self.running = False
        self.listener.close()
