"""OCI runtime-spec data: the version Corral implements (defaults.py: the default config).

Plain data, no I/O."""

SPEC_VERSION = "1.2.0"
