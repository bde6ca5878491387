"""Image references as docker writes them: `busybox`, `host:5000/team/app:1.2`,
`name@sha256:...`. Normalised the way docker and containerd do (docker.io/library/...)."""

from __future__ import annotations

import re

from corral.errors import ImageError
from corral.structs import record

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# docker.io is a name; its API lives here.
_API_HOSTS = {"docker.io": "registry-1.docker.io"}

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")


class ReferenceError(ImageError):
    """An image reference that cannot be parsed."""


@record
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, e.g. docker.io/library/busybox."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        return _API_HOSTS.get(self.registry, self.registry)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form docker prints: busybox:latest, team/app:1.2, host:5000/x:y."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository.removeprefix("library/")
        out = name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise; `default_tag` adds :latest when neither tag nor digest is given."""
    if not text or text != text.strip():
        raise ReferenceError(f"invalid image reference {text!r}")
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ReferenceError(f"invalid image reference {text!r}: bad digest {digest!r}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError(f"invalid image reference {text!r}: bad tag {tag!r}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or first[:1] == "["):
        registry, path = first, remainder
        if not _HOST.match(registry):
            raise ReferenceError(f"invalid image reference {text!r}: bad registry {registry!r}")
    else:
        registry, path = DEFAULT_REGISTRY, rest
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            hint = " (repository names are lower case)" if component.lower() != component else ""
            raise ReferenceError(
                f"invalid image reference {text!r}: bad name component {component!r}{hint}"
            )
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))
