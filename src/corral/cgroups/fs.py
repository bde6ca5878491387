"""Reading and writing cgroupfs files, with OS errors translated where they happen.

Paths are plain strings (os.path): pathlib costs ~10 ms to import on the start path.
"""

from __future__ import annotations

import errno
import os
import time

from corral.errors import CgroupBusy, CgroupError, CgroupInvalid, CgroupNotFound, KernelError

join = os.path.join


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError as err:
        raise CgroupNotFound(f"no such cgroup file `{path}`") from err
    except OSError as err:
        raise KernelError("read", err.errno or 0, path) from err


def read_int(path: str) -> int | None:
    """An integer file; 'max' reads as None."""
    text = read(path).strip()
    return None if text == "max" else int(text)


def read_keyed(path: str) -> dict[str, int]:
    """A flat-keyed file such as memory.stat, cpu.stat or memory.events."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write(path: str, value: str) -> None:
    """Write one value; the kernel's refusal becomes an error that names file and value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError as err:
        name, parent = os.path.basename(path), os.path.dirname(path)
        raise CgroupInvalid(f"unknown parameter `{name}` (no such file in `{parent}`)") from err
    except OSError as err:
        raise KernelError("open", err.errno or 0, path) from err
    try:
        os.write(fd, value.encode())
    except OSError as err:
        code = err.errno or 0
        if code in (errno.EINVAL, errno.ERANGE):
            raise CgroupInvalid(f"the kernel rejected {value!r} for `{path}`") from err
        if code == errno.EBUSY:
            raise CgroupBusy(f"writing {value!r} to `{path}`: device or resource busy") from err
        raise KernelError("write", code, path, repr(value)) from err
    finally:
        os.close(fd)


def pids(path: str) -> list[int]:
    """The pids listed in a cgroup.procs / tasks / cgroup.threads file."""
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise KernelError("read", err.errno or 0, path) from err


def make_dir(path: str) -> bool:
    """mkdir; True if this call created it."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return False
    except OSError as err:
        raise KernelError("mkdir", err.errno or 0, path) from err


def remove_dir(path: str, attempts: int = 50) -> None:
    """rmdir a cgroup directory. Tasks that just died can hold it busy for a moment."""
    for i in range(attempts):
        try:
            os.rmdir(path)
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
            raise KernelError("rmdir", err.errno or 0, path) from err


def child_dirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"cannot list `{path}`: {err.strerror}") from err


def walk_bottom_up(path: str) -> list[str]:
    """Every group directory under (and including) `path`, children before parents."""
    out: list[str] = []
    for child in child_dirs(path):
        out.extend(walk_bottom_up(child))
    if os.path.isdir(path):
        out.append(path)
    return out


def is_dir(path: str) -> bool:
    return os.path.isdir(path)


def exists(path: str) -> bool:
    return os.path.exists(path)
