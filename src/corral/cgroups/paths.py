"""Group paths: validated, always relative to Corral's parent group."""

from __future__ import annotations

from corral.errors import CgroupInvalid

_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@+-")


def validate_group(path: str) -> str:
    """Return the normalised group path ('a/b') or raise CgroupInvalid naming the problem.

    Group paths never leave Corral's parent: no '..', no absolute paths, no empty or odd
    components (a cgroup directory name with a newline or slash cannot be written safely).
    """
    if not path or not path.strip("/"):
        raise CgroupInvalid("empty group path")
    if path.startswith("/"):
        raise CgroupInvalid(
            f"group path {path!r} is absolute: group paths are relative to Corral's cgroup parent"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise CgroupInvalid(
                f"group path {path!r} contains '..': it would leave Corral's parent"
            )
        if len(part) > 255 or not _ALLOWED.issuperset(part):
            raise CgroupInvalid(
                f"group path {path!r}: component {part!r} may only use letters, digits and _.:@+-"
            )
        if part.startswith("cgroup.") or part in ("tasks", "notify_on_release", "release_agent"):
            raise CgroupInvalid(f"group path {path!r}: {part!r} is a cgroup control file name")
    return "/".join(parts)
