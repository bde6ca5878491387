"""cgroups: one Manager interface over the v1 and v2 backends, the resource model, host
layout detection, and the article's hierarchy model (mounting v1 hierarchies)."""

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
