"""The OCI runtime: Corral's libcontainer. `Runtime` is the library API; `corral-runtime`
(corral.cli.runtime) is runc's command line over it."""

from .container import Runtime
from .state import DEFAULT_ROOT, Status

__all__ = ["DEFAULT_ROOT", "Runtime", "Status"]
