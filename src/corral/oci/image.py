"""Image-spec data: media types, descriptors, manifests, platform choice. Plain data, no I/O.

Docker's schema 2 types are accepted everywhere the OCI ones are: the two formats differ
only in their media type strings.
"""

from __future__ import annotations

import os
import re
from typing import Any

from corral.errors import ImageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
LAYER_TYPES = (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    DOCKER_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


class ImageFormatError(ImageError):
    """A manifest, index or config that does not follow the image spec."""


def check_digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ImageFormatError(f"{what}: invalid digest {value!r}")
    return value


def check_descriptor(desc: object, what: str) -> dict[str, Any]:
    if not isinstance(desc, dict):
        raise ImageFormatError(f"{what}: descriptor is not an object")
    check_digest(desc.get("digest"), what)
    size = desc.get("size")
    if not isinstance(size, int) or size < 0:
        raise ImageFormatError(f"{what}: invalid size {size!r}")
    if not isinstance(desc.get("mediaType", ""), str):
        raise ImageFormatError(f"{what}: invalid mediaType")
    return desc


def check_manifest(doc: object) -> dict[str, Any]:
    """A single-platform manifest: config and layers descriptors."""
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise ImageFormatError("manifest: not a schema version 2 manifest")
    check_descriptor(doc.get("config"), "manifest config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ImageFormatError("manifest: layers is not a list")
    for i, layer in enumerate(layers):
        check_descriptor(layer, f"manifest layer {i}")
        media = layer.get("mediaType", OCI_LAYER_GZIP)
        if media == DOCKER_FOREIGN_LAYER:
            raise ImageFormatError(f"manifest layer {i}: foreign layers are not supported")
        if media not in LAYER_TYPES:
            raise ImageFormatError(f"manifest layer {i}: unsupported media type {media!r}")
    return doc


def check_config(doc: object, layers: int) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ImageFormatError("image config: not an object")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageFormatError("image config: rootfs.diff_ids missing")
    if len(diff_ids) != layers:
        raise ImageFormatError(
            f"image config: {len(diff_ids)} diff_ids for {layers} layers in the manifest"
        )
    for i, diff in enumerate(diff_ids):
        check_digest(diff, f"image config diff_id {i}")
    return doc


# ----- platforms -------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386"}


def host_platform() -> dict[str, str]:
    """The host's platform in image-spec terms (GOOS/GOARCH names)."""
    machine = os.uname().machine
    out = {"os": "linux", "architecture": _ARCH.get(machine, machine)}
    if machine == "armv7l":
        out["variant"] = "v7"
    elif machine == "armv6l":
        out["variant"] = "v6"
    elif machine == "aarch64":
        out["variant"] = "v8"
    return out


def parse_platform(text: str) -> dict[str, str]:
    """'linux/arm64/v8' -> {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageFormatError(f"invalid platform {text!r}: expected os/arch[/variant]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def platform_string(plat: dict[str, Any]) -> str:
    parts = [str(plat.get("os", "?")), str(plat.get("architecture", "?"))]
    if plat.get("variant"):
        parts.append(str(plat["variant"]))
    return "/".join(parts)


def pick_manifest(index: dict[str, Any], want: dict[str, str]) -> dict[str, Any]:
    """The index entry for `want`; an exact variant wins, a missing variant is accepted
    (arm64 images often omit v8). Attestation manifests (platform unknown/unknown) never."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageFormatError("image index: manifests is not a list")
    best: tuple[int, dict[str, Any]] | None = None
    for i, entry in enumerate(entries):
        check_descriptor(entry, f"image index entry {i}")
        plat = entry.get("platform") or {}
        if plat.get("os") != want["os"] or plat.get("architecture") != want["architecture"]:
            continue
        variant = plat.get("variant")
        if variant == want.get("variant"):
            score = 2
        elif variant is None or want.get("variant") is None:
            score = 1
        else:
            continue
        if best is None or score > best[0]:
            best = (score, entry)
    if best is None:
        offered = ", ".join(
            platform_string(e.get("platform") or {}) for e in entries if isinstance(e, dict)
        )
        raise ImageFormatError(
            f"no manifest for platform {platform_string(want)} (the image offers: {offered})"
        )
    return best[1]


def default_platform() -> dict[str, str]:
    """CORRAL_PLATFORM overrides the host's (useful to pull for another machine)."""
    override = os.environ.get("CORRAL_PLATFORM")
    return parse_platform(override) if override else host_platform()
