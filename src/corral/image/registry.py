"""A client for the Docker Registry HTTP API v2 / OCI distribution spec (pull side).

Plain http.client underneath: one keep-alive connection per thread and host, redirects
followed (blob storage often lives elsewhere; credentials are not sent there), and auth
answered as the registry's WWW-Authenticate challenge asks — Basic with stored credentials,
or a Bearer token fetched from the realm it names, cached per scope.

Transport policy, as docker's: HTTPS, verified against the system CAs plus any
`<certs dir>/<host>/*.crt` (default /etc/corral/certs.d, like /etc/docker/certs.d). A
registry marked insecure (localhost and 127.0.0.0/8 always, others by --insecure-registry
or $CORRAL_INSECURE_REGISTRIES) is tried over HTTPS without verification first, then HTTP.
"""

from __future__ import annotations

import glob
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from corral import fastjson
from corral.errors import RegistryAuthError, RegistryError
from corral.image import auth
from corral.oci import image as spec

DEFAULT_CERTS_DIR = "/etc/corral/certs.d"
USER_AGENT = "corral/0.1"
TIMEOUT = 30.0
RETRIES = 4
_CHUNK = 1 << 20
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
)


def is_insecure(host: str, extra: list[str] | None = None) -> bool:
    """Whether plain HTTP may be used for `host` (host[:port])."""
    listed = set(extra or [])
    listed.update(h for h in os.environ.get("CORRAL_INSECURE_REGISTRIES", "").split(",") if h)
    if host in listed or host.rsplit(":", 1)[0] in listed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Response:
    """A response being read; close() returns the connection to its pool when drained."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        self.raw = raw
        self.conn = conn
        self.status = raw.status

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def close(self) -> None:
        self.raw.close()


class Registry:
    """One registry host; safe to share between threads."""

    def __init__(
        self,
        host: str,
        *,
        authfile: str | None = None,
        insecure: list[str] | None = None,
        certs_dir: str | None = None,
        credentials: auth.Credentials | None = None,
    ) -> None:
        self.host = host
        self.insecure = is_insecure(host, insecure)
        self.credentials = credentials or auth.lookup(
            "docker.io" if host == "registry-1.docker.io" else host, authfile
        )
        self.certs_dir = certs_dir or os.environ.get("CORRAL_CERTS_DIR", DEFAULT_CERTS_DIR)
        self._scheme: str | None = None
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    # ----- connections ---------------------------------------------------------------------

    def _context(self, verify: bool) -> ssl.SSLContext:
        if not verify:  # no CA bundle to load (it costs ~20 ms)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        for ca in sorted(glob.glob(os.path.join(self.certs_dir, self.host, "*.crt"))):
            ctx.load_verify_locations(ca)
        return ctx

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {}
        )
        conn = pool.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    netloc, timeout=TIMEOUT, context=self._context(not self.insecure)
                )
            else:
                conn = http.client.HTTPConnection(netloc, timeout=TIMEOUT)
            pool[(scheme, netloc)] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._local.__dict__.get("pool", {}).values():
            conn.close()
        self._local.__dict__["pool"] = {}

    def _base(self) -> str:
        """The scheme that answers, found once per Registry (HTTPS first)."""
        with self._lock:
            if self._scheme:
                return self._scheme
            schemes = ["https", "http"] if self.insecure else ["https"]
            last: Exception | None = None
            for scheme in schemes:
                try:
                    resp = self._send("GET", f"{scheme}://{self.host}/v2/", {})
                    resp.read()
                    self._scheme = scheme
                    if resp.status == 401:
                        self._challenge = auth.parse_challenge(
                            resp.header("WWW-Authenticate") or ""
                        )
                        if self._challenge[0] == "basic" and self.credentials:
                            self._basic = True
                    return scheme
                except (OSError, ssl.SSLError, http.client.HTTPException) as err:
                    self._drop(scheme, self.host)
                    last = err
            raise RegistryError(f"registry {self.host} cannot be reached: {last}") from None

    # ----- requests ------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str]) -> Response:
        """One request with redirects; retried once on a stale keep-alive connection."""
        for _hop in range(6):
            parts = urllib.parse.urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            hdrs = {"User-Agent": USER_AGENT, **headers}
            for attempt in (0, 1):
                conn = self._connect(parts.scheme, parts.netloc)
                try:
                    conn.request(method, path, headers=hdrs)
                    raw = conn.getresponse()
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self._drop(parts.scheme, parts.netloc)
                    if attempt:
                        raise
            resp = Response(raw, conn)
            if resp.status in (301, 302, 303, 307, 308) and resp.header("Location"):
                resp.read()
                target = urllib.parse.urljoin(url, resp.header("Location") or "")
                if urllib.parse.urlsplit(target).netloc != parts.netloc:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url = target
                continue
            return resp
        raise RegistryError(f"{self.host}: too many redirects for {url}")

    def request(
        self, method: str, repo: str, path: str, headers: dict[str, str] | None = None
    ) -> Response:
        """An API request for `repo`, authenticating as challenged."""
        url = f"{self._base()}://{self.host}/v2/{repo}/{path}"
        headers = dict(headers or {})
        scope = f"repository:{repo}:pull"
        for attempt in (0, 1):
            authz = self._authorization(scope)
            if authz:
                headers["Authorization"] = authz
            resp = self._send(method, url, headers)
            if resp.status != 401:
                return resp
            challenge = resp.header("WWW-Authenticate") or ""
            resp.read()
            if attempt:
                break
            self._answer_challenge(challenge, scope)
        who = f" as {self.credentials.username!r}" if self.credentials else " (no credentials)"
        raise RegistryAuthError(f"{self.host}: access to {repo} denied{who}")

    def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token:
            return f"Bearer {token}"
        if self._basic and self.credentials:
            return self.credentials.basic()
        return None

    def _answer_challenge(self, header: str, scope: str | None) -> None:
        scheme, params = auth.parse_challenge(header)
        if scheme == "basic":
            if not self.credentials:
                raise RegistryAuthError(
                    f"{self.host} requires a login (basic auth): run `corral login {self.host}`"
                )
            self._basic = True
        elif scheme == "bearer" and (scope or params.get("scope")):
            self._tokens[scope or params["scope"]] = self._fetch_token(params, scope)
        else:
            raise RegistryError(f"{self.host}: unsupported auth challenge {header!r}")

    def _fetch_token(self, params: dict[str, str], scope: str | None) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{self.host}: Bearer challenge without a realm")
        query = {
            k: v
            for k, v in (
                ("service", params.get("service")),
                ("scope", scope or params.get("scope")),
            )
            if v
        }
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        try:
            resp = self._send("GET", url, headers)
            body = resp.read()
        except (OSError, http.client.HTTPException) as err:
            raise RegistryError(f"token server {realm}: {err}") from None
        if resp.status in (401, 403):
            raise RegistryAuthError(f"token server {realm} refused the credentials")
        if resp.status != 200:
            raise RegistryError(f"token server {realm}: HTTP {resp.status}")
        try:
            doc = fastjson.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {realm}: no token in its answer")
        return token

    def ping(self) -> None:
        """Check reachability and credentials, as `docker login` does: a GET of /v2/ with
        Basic credentials, or with a token obtained for no particular scope."""
        scheme = self._base()
        kind, params = self._challenge or ("", {})
        if not kind:
            return  # an open registry: any credentials do
        if not self.credentials:
            raise RegistryAuthError(f"{self.host}: no credentials to log in with")
        if kind == "bearer":
            authz = f"Bearer {self._fetch_token(params, None)}"
        else:
            authz = self.credentials.basic()
        resp = self._send("GET", f"{scheme}://{self.host}/v2/", {"Authorization": authz})
        resp.read()
        if resp.status == 401:
            raise RegistryAuthError(f"{self.host}: login refused for {self.credentials.username!r}")
        if resp.status != 200:
            raise RegistryError(f"{self.host}: login check answered HTTP {resp.status}")

    # ----- API -----------------------------------------------------------------------------

    def _checked(self, resp: Response, what: str) -> Response:
        if resp.status == 200 or resp.status == 206:
            return resp
        body = resp.read()[:500]
        message = _error_message(body)
        if resp.status == 404:
            raise RegistryError(f"{self.host}: {what} not found{message}")
        raise RegistryError(f"{self.host}: {what}: HTTP {resp.status}{message}")

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        """(body, media type) of the manifest or index `ref` (a tag or a digest)."""
        resp = self._retrying(
            lambda: self.request("GET", repo, f"manifests/{ref}", {"Accept": spec.ACCEPT})
        )
        self._checked(resp, f"manifest {repo}:{ref}")
        body = resp.read()
        media = (resp.header("Content-Type") or "").split(";")[0].strip()
        if not media or media in ("application/json", "text/plain"):
            try:
                media = fastjson.loads(body).get("mediaType", spec.OCI_MANIFEST)
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.host}: manifest {repo}:{ref} is not JSON") from None
        return body, media

    def blob(self, repo: str, digest: str) -> bytes:
        resp = self._checked(
            self._retrying(lambda: self.request("GET", repo, f"blobs/{digest}")), f"blob {digest}"
        )
        return resp.read()

    def open_blob(self, repo: str, digest: str, offset: int = 0) -> tuple[Response, int]:
        """Start reading a blob at `offset`; returns (response, offset it really starts at:
        0 when the server ignored the Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._checked(
            self._retrying(lambda: self.request("GET", repo, f"blobs/{digest}", headers)),
            f"blob {digest}",
        )
        return resp, offset if resp.status == 206 else 0

    def _retrying(self, call: Callable[[], Response]) -> Response:
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                resp = call()
                if resp.status in (429, 500, 502, 503, 504) and attempt < RETRIES - 1:
                    resp.read()
                    time.sleep(delay)
                    delay *= 2
                    continue
                return resp
            except _TRANSIENT as err:
                if attempt == RETRIES - 1:
                    raise RegistryError(f"{self.host}: {err}") from None
                self.close()
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _error_message(body: bytes) -> str:
    try:
        errors: list[dict[str, Any]] = fastjson.loads(body).get("errors") or []
        text = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    except (ValueError, AttributeError):
        return ""
    return f" ({text})" if text else ""


class BlobReader:
    """A file-like reader of one blob that survives dropped connections: it reopens with a
    Range request from the byte it had reached (and says so via `restarted` if the server
    can only start over)."""

    def __init__(self, registry: Registry, repo: str, digest: str, offset: int) -> None:
        self.registry = registry
        self.repo = repo
        self.digest = digest
        self.position = offset
        self._resp: Response | None = None
        self.start_offset = offset
        self.end: int | None = None
        self.retries = 0

    def open(self) -> int:
        """Connects; returns where the data starts (0 if the resume was refused)."""
        self._resp, self.position = self.registry.open_blob(self.repo, self.digest, self.position)
        self.start_offset = self.position
        length = self._resp.header("Content-Length")
        self.end = self.position + int(length) if length and length.isdigit() else None
        return self.position

    def read(self, n: int = _CHUNK) -> bytes:
        while True:
            if self._resp is None:
                self.open()
            assert self._resp is not None
            try:
                data = self._resp.read(n)
                if not data and n and self.end is not None and self.position < self.end:
                    # http.client reports a connection closed early as a plain EOF
                    raise ConnectionResetError(
                        f"connection closed at byte {self.position} of {self.end}"
                    )
                self.position += len(data)
                return data
            except _TRANSIENT as err:
                self.retries += 1
                self._resp = None
                self.registry.close()
                if self.retries > RETRIES:
                    raise RegistryError(
                        f"{self.registry.host}: blob {self.digest}: {err}"
                    ) from None
                time.sleep(0.1 * self.retries)
                resume = self.position
                self.open()
                if self.position != resume:
                    raise RegistryError(
                        f"{self.registry.host}: blob {self.digest}: the connection dropped and "
                        "the server does not support resuming"
                    ) from None

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
