"""Registry credentials and authentication challenges.

Credentials come from a file shaped like docker's config.json:
    {"auths": {"host:port": {"auth": base64("user:password")}}}
(`username`/`password` keys are accepted too). Files searched, first match wins:
--authfile / $CORRAL_AUTH_FILE, ~/.config/corral/auth.json (written by `corral login`),
~/.docker/config.json. Credential helpers (credsStore) are not run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from typing import Any

from corral import fastjson
from corral.errors import RegistryAuthError
from corral.structs import record

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")


@record
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def default_auth_file() -> str:
    return os.path.join(os.path.expanduser("~"), ".config", "corral", "auth.json")


def auth_files(explicit: str | None = None) -> list[str]:
    if explicit:
        return [explicit]
    env = os.environ.get("CORRAL_AUTH_FILE")
    if env:
        return [env]
    return [default_auth_file(), os.path.join(os.path.expanduser("~"), ".docker", "config.json")]


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = fastjson.loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise RegistryAuthError(f"{path}: not valid JSON: {err}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if auths is not None and not isinstance(auths, dict):
        raise RegistryAuthError(f"{path}: `auths` is not an object")
    return auths or {}


def _keys(registry: str) -> list[str]:
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys.extend(_DOCKER_HUB_KEYS)
    return keys


def lookup(registry: str, authfile: str | None = None) -> Credentials | None:
    for path in auth_files(authfile):
        auths = _load(path)
        for key in _keys(registry):
            entry = auths.get(key) or auths.get(key + "/")
            if isinstance(entry, dict):
                return _decode(entry, path, key)
    return None


def _decode(entry: dict[str, Any], path: str, key: str) -> Credentials:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise RegistryAuthError(
                f"{path}: auths[{key!r}].auth is not base64(user:password)"
            ) from None
        return Credentials(user, password)
    if entry.get("username") is not None:
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    raise RegistryAuthError(f"{path}: auths[{key!r}] has no credentials")


def store(registry: str, creds: Credentials, authfile: str | None = None) -> str:
    """Save credentials (mode 0600), as `docker login` does. Returns the file written."""
    path = authfile or os.environ.get("CORRAL_AUTH_FILE") or default_auth_file()
    return _edit(path, registry, creds)


def erase(registry: str, authfile: str | None = None) -> bool:
    path = authfile or os.environ.get("CORRAL_AUTH_FILE") or default_auth_file()
    if registry not in _load(path):
        return False
    _edit(path, registry, None)
    return True


def _edit(path: str, registry: str, creds: Credentials | None) -> str:
    doc: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError), open(path, "rb") as f:
        doc = fastjson.loads(f.read())
    auths = doc.setdefault("auths", {})
    if creds is None:
        auths.pop(registry, None)
    else:
        auths[registry] = {
            "auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        }
    os.makedirs(os.path.dirname(path) or ".", 0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(fastjson.dumps(doc))
    os.rename(tmp, path)
    return path


_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="https://x/token",service="reg",scope="repository:a:pull"'
    -> ('bearer', {'realm': ..., 'service': ..., 'scope': ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return scheme.lower(), params
