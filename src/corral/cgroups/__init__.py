"""cgroups: one Manager interface over the v1 and v2 backends, the resource model, host
layout detection, and the article's hierarchy model (mounting v1 hierarchies).

Names load on first use (PEP 562), so `import corral.cgroups.fs` on the container start
path does not pull in the parameter parser and everything else.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .layout import Hierarchy, HostLayout, Mode, Subsystem, detect, parse_proc_pid_cgroup
    from .manager import (
        DEFAULT_PARENT,
        PARENT_ENV,
        FreezerState,
        Manager,
        Stats,
        open_manager,
    )
    from .params import files_for, parse_param, parse_params
    from .paths import validate_group
    from .resources import DeviceRule, Resources, Throttle
    from .units import UNLIMITED, format_bytes, parse_bytes

_WHERE = {
    "Hierarchy": "layout",
    "HostLayout": "layout",
    "Mode": "layout",
    "Subsystem": "layout",
    "detect": "layout",
    "parse_proc_pid_cgroup": "layout",
    "DEFAULT_PARENT": "manager",
    "PARENT_ENV": "manager",
    "FreezerState": "manager",
    "Manager": "manager",
    "Stats": "manager",
    "open_manager": "manager",
    "files_for": "params",
    "parse_param": "params",
    "parse_params": "params",
    "validate_group": "paths",
    "DeviceRule": "resources",
    "Resources": "resources",
    "Throttle": "resources",
    "UNLIMITED": "units",
    "format_bytes": "units",
    "parse_bytes": "units",
}

__all__ = [
    "DEFAULT_PARENT",
    "PARENT_ENV",
    "UNLIMITED",
    "DeviceRule",
    "FreezerState",
    "Hierarchy",
    "HostLayout",
    "Manager",
    "Mode",
    "Resources",
    "Stats",
    "Subsystem",
    "Throttle",
    "detect",
    "files_for",
    "format_bytes",
    "open_manager",
    "parse_bytes",
    "parse_param",
    "parse_params",
    "parse_proc_pid_cgroup",
    "validate_group",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
