"""The exception tree. One root, one subclass per layer; messages name the object.

Only the CLI prints errors and picks exit codes; every other layer raises these.
"""

from __future__ import annotations

import errno as _errno
import os


class CorralError(Exception):
    """Root of every error Corral raises on purpose."""


class KernelError(CorralError):
    """A system call failed. Carries the operation, the object it acted on and errno."""

    def __init__(self, op: str, errno: int, target: str | None = None, detail: str = "") -> None:
        self.op = op
        self.errno = errno
        self.target = target
        self.detail = detail
        name = _errno.errorcode.get(errno, str(errno))
        where = f" `{target}`" if target else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{op}{where}: {os.strerror(errno)} [{name}]{extra}")


class CgroupError(CorralError):
    """Anything wrong in the cgroups layer."""


class CgroupInvalid(CgroupError):
    """Bad input: an unknown parameter, a malformed value, a bad group path."""


class CgroupNotFound(CgroupError):
    """The group (or the controller it needs) does not exist."""


class CgroupBusy(CgroupError):
    """The group still holds tasks or children, or the kernel's rules forbid the operation."""


class CgroupUnsupported(CgroupError):
    """The host cannot do what was asked (controller not mounted, v2 device rules, ...)."""


class SubsystemBusy(CgroupError):
    """The article's rule 2: a subsystem is already attached to another hierarchy."""


class ContainerError(CorralError):
    """Anything wrong in the OCI runtime layer."""


class ConfigError(ContainerError):
    """The bundle's config.json is missing, malformed or asks for something invalid."""


class ContainerNotFound(ContainerError):
    """No container with that id under the runtime's root."""


class ContainerExists(ContainerError):
    """A container with that id already exists."""


class InvalidState(ContainerError):
    """The operation is not allowed in the container's current state."""


class HookFailed(ContainerError):
    """A lifecycle hook exited non-zero, timed out or could not be run."""


class ImageError(CorralError):
    """Anything wrong in the image layer: store, registry, layers."""


class ImageNotFound(ImageError):
    """No image in the store answers to that name or id."""


class ImageInUse(ImageError):
    """The image backs a container (a snapshot holds it)."""


class DigestMismatch(ImageError):
    """Content whose digest is not the one it was fetched or stored under."""


class RegistryError(ImageError):
    """The registry answered with an error, or could not be reached."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or asked for some and there were none)."""


class NetworkError(CorralError):
    """Networks, addresses, published ports."""


class NetworkNotFound(NetworkError):
    pass


class NetworkInUse(NetworkError):
    pass


class PortInUse(NetworkError):
    pass
