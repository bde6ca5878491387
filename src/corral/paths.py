"""Where Corral keeps its data by default: a leaf, so that every command can find its
data root without importing the layer that owns the data."""

from __future__ import annotations

import os

DEFAULT_DATA_ROOT = "/var/lib/corral"


def data_root() -> str:
    """--data-root's default: $CORRAL_DATA_ROOT or /var/lib/corral."""
    return os.environ.get("CORRAL_DATA_ROOT", DEFAULT_DATA_ROOT)
