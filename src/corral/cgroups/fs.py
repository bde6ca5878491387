"""Reading and writing cgroupfs files, with OS errors translated where they happen."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from corral.errors import CgroupBusy, CgroupError, CgroupInvalid, CgroupNotFound, KernelError


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError as err:
        raise CgroupNotFound(f"no such cgroup file `{path}`") from err
    except OSError as err:
        raise KernelError("read", err.errno or 0, str(path)) from err


def read_int(path: Path) -> int | None:
    """An integer file; 'max' reads as None."""
    text = read(path).strip()
    return None if text == "max" else int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file such as memory.stat, cpu.stat or memory.events."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write(path: Path, value: str) -> None:
    """Write one value; the kernel's refusal becomes an error that names file and value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise CgroupInvalid(
            f"unknown parameter `{path.name}` (no such file in `{path.parent}`)"
        ) from err
    except OSError as err:
        raise KernelError("open", err.errno or 0, str(path)) from err
    try:
        os.write(fd, value.encode())
    except OSError as err:
        code = err.errno or 0
        if code in (errno.EINVAL, errno.ERANGE):
            raise CgroupInvalid(f"the kernel rejected {value!r} for `{path}`") from err
        if code == errno.EBUSY:
            raise CgroupBusy(f"writing {value!r} to `{path}`: device or resource busy") from err
        raise KernelError("write", code, str(path), repr(value)) from err
    finally:
        os.close(fd)


def pids(path: Path) -> list[int]:
    """The pids listed in a cgroup.procs / tasks / cgroup.threads file."""
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise KernelError("read", err.errno or 0, str(path)) from err


def make_dir(path: Path) -> bool:
    """mkdir; True if this call created it."""
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False
    except OSError as err:
        raise KernelError("mkdir", err.errno or 0, str(path)) from err


def remove_dir(path: Path, attempts: int = 50) -> None:
    """rmdir a cgroup directory. Tasks that just died can hold it busy for a moment."""
    for i in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno == errno.EBUSY and i + 1 < attempts:
                time.sleep(0.01 * min(i + 1, 10))
                continue
            if err.errno == errno.EBUSY:
                raise CgroupBusy(
                    f"cgroup `{path}` is still in use (tasks or child groups)"
                ) from err
            raise KernelError("rmdir", err.errno or 0, str(path)) from err


def child_dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"cannot list `{path}`: {err.strerror}") from err


def walk_bottom_up(path: Path) -> list[Path]:
    """Every group directory under (and including) `path`, children before parents."""
    out: list[Path] = []
    for child in child_dirs(path):
        out.extend(walk_bottom_up(child))
    if path.is_dir():
        out.append(path)
    return out
