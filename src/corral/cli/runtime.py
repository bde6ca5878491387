"""`corral-runtime`: the name is reserved for Corral's runc-compatible OCI runtime.

The runtime itself is not built yet; until it is, this command says so instead of
pretending to run anything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from corral import __version__

OCI_SPEC_VERSION = "1.2.0"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-v"]):
        print(f"corral-runtime version {__version__}\ncommit: unknown\nspec: {OCI_SPEC_VERSION}")
        return 0
    print(
        "corral-runtime: the OCI runtime is not implemented yet; only --version works",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
