"""Where network state lives and what Corral's host-wide objects are called. Everything
can be moved by the environment, so that a test run (or a second Corral) never touches the
names of another: CORRAL_BRIDGE, CORRAL_DEFAULT_SUBNET, CORRAL_SUBNET_POOL, CORRAL_NFT_TABLE."""

from __future__ import annotations

import os
import re

from corral.errors import ConfigError

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def validate_name(name: str) -> str:
    """A network's name, as docker allows them."""
    if not _NAME.match(name) or len(name) > 64:
        raise ConfigError(f"invalid network name {name!r}: use letters, digits, '_', '.', '-'")
    return name


DEFAULT_MTU = 1500
# Host-side veth names: this prefix, 11 characters of the container id, the endpoint index.
VETH_PREFIX = "vc"
# User networks' bridges: this prefix and 11 characters of the network id (15 at most).
BRIDGE_PREFIX = "crl-"


def default_bridge() -> str:
    return os.environ.get("CORRAL_BRIDGE") or "corral0"


def default_subnet() -> str:
    return os.environ.get("CORRAL_DEFAULT_SUBNET") or "10.66.0.0/16"


def subnet_pool() -> str:
    """User networks without --subnet get the first free /24 of this range."""
    return os.environ.get("CORRAL_SUBNET_POOL") or "10.67.0.0/16"


def nft_table() -> str:
    return os.environ.get("CORRAL_NFT_TABLE") or "corral"


def network_dir(data_root: str) -> str:
    return os.path.join(data_root, "network")


def run_dir() -> str:
    """Markers of what exists in the kernel now (bridges, rules): tmpfs, gone at reboot
    exactly when the bridges and the nft table are."""
    return os.path.join(os.environ.get("CORRAL_ROOT", "/run/corral"), "network")
