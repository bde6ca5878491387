"""Start the kernel's cgroup-migration grace period early, off the critical path.

Moving a process between cgroups takes the kernel's global threadgroup lock for writing;
the first writer after a quiet spell waits for an RCU grace period (~13 ms here) before
it gets it, and writers soon after get it at once. A container start has to move its
init into the container's cgroup, so `create` begins with this: a forked child writes its own pid
into the cgroup it is already in (the kernel changes nothing) and exits, paying the grace
period while the runtime imports, parses the config, makes the cgroup and forks. The
later real move is then fast. A process rather than a thread, so it needs no share of
the interpreter lock. Any failure is ignored: it is only a head start.
"""

from __future__ import annotations

import os


def own_procs_file(proc: str = "/proc") -> str | None:
    """cgroup.procs of the cgroup this process is in, in its first mounted hierarchy."""
    try:
        with open(f"{proc}/self/cgroup") as f:
            lines = f.read().splitlines()
        with open(f"{proc}/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        wanted = set(controllers.split(",")) if controllers else set()
        for m in mounts:
            left, _, right = m.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3:
                continue
            fstype, superopts = rfields[0], rfields[2]
            v2 = not wanted and fstype == "cgroup2"
            v1 = bool(wanted) and fstype == "cgroup" and wanted <= set(superopts.split(","))
            if v1 or v2:
                root, mountpoint = fields[3], fields[4]
                rel = path[len(root) :] if root != "/" and path.startswith(root) else path
                return os.path.join(mountpoint, rel.lstrip("/"), "cgroup.procs")
    return None


def start() -> int:
    """Fork the helper; returns its pid (0 if none), which the caller may reap later."""
    path = own_procs_file()
    if not path:
        return 0
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid == 0:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass
        os._exit(0)
    return pid
