"""The debian template's root filesystem: debootstrap from the mirror the host's apt uses,
kept in a cache so that the next container of the same release and architecture is a copy.

A container boots sysvinit (`--include=sysvinit-core`; minbase has no init), with an
inittab for a container: no gettys on ttys it does not have, a shell on the console,
powerfail (SIGPWR, LXC's halt signal) runs a clean `shutdown -h now`."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess

from corral.errors import ContainerError

INITTAB = """\
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
l0:0:wait:/etc/init.d/rc 0
l2:2:wait:/etc/init.d/rc 2
l6:6:wait:/etc/init.d/rc 6
pf::powerwait:/sbin/shutdown -h now
co:2345:respawn:/bin/sh
"""


def cache_dir() -> str:
    """Shared by every data root, as LXC's /var/cache/lxc is."""
    return os.environ.get("CORRAL_LXC_CACHE") or "/var/cache/corral/lxc"


def host_mirror() -> str:
    """The first Debian mirror in the host's apt sources (deb822 or one-line format)."""
    candidates = ["/etc/apt/sources.list"]
    directory = "/etc/apt/sources.list.d"
    if os.path.isdir(directory):
        candidates += [os.path.join(directory, f) for f in sorted(os.listdir(directory))]
    for path in candidates:
        if not path.endswith((".list", ".sources")):
            continue
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if "security" not in m[1]:
                return m[1]
    return "http://deb.debian.org/debian"


def install(cache: str, rootfs: str, release: str, arch: str, mirror: str) -> None:
    """Fill `rootfs` from the cache, bootstrapping the cache first if needed."""
    _check(release, arch)
    if not shutil.which("debootstrap"):
        raise ContainerError("the debian template needs debootstrap (apt-get install debootstrap)")
    base = ensure_cache(cache, release, arch, mirror)
    subprocess.run(["cp", "-a", "--reflink=auto", f"{base}/rootfs/.", rootfs], check=True)
    with open(os.path.join(rootfs, "etc/inittab"), "w") as f:
        f.write(INITTAB)


def _check(release: str, arch: str) -> None:
    if not re.match(r"^[a-z]+$", release) or not re.match(r"^[a-z0-9]+$", arch):
        raise ContainerError(f"invalid release {release!r} or architecture {arch!r}")


def ensure_cache(cache: str, release: str, arch: str, mirror: str = "") -> str:
    """The cached bootstrap of release/arch, made first if missing. Its directory."""
    _check(release, arch)
    base = os.path.join(cache, "debian", f"{release}-{arch}")
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one bootstrap at a time; others wait and copy
        if not os.path.exists(os.path.join(base, ".complete")):
            _bootstrap(base, release, arch, mirror or host_mirror())
    return base


def _bootstrap(base: str, release: str, arch: str, mirror: str) -> None:
    partial = base + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=sysvinit-core,ifupdown",
         f"--arch={arch}", release, os.path.join(partial, "rootfs"), mirror],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-5:] or result.stdout.splitlines()[-5:])
        raise ContainerError(f"debootstrap {release} ({arch}) from {mirror} failed:\n{tail}")
    rootfs = os.path.join(partial, "rootfs")
    shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(os.path.join(rootfs, "var/cache/apt/archives/partial"), exist_ok=True)
    open(os.path.join(partial, ".complete"), "w").close()
    shutil.rmtree(base, ignore_errors=True)
    os.rename(partial, base)


def main(argv: list[str] | None = None) -> int:
    """`python -m corral.lxc.debian prepare [RELEASE [ARCH]]`: fill the cache ahead of
    time (the test set-up does, so that no test downloads anything)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "prepare":
        print("usage: python -m corral.lxc.debian prepare [RELEASE [ARCH]]", file=sys.stderr)
        return 2
    release = args[1] if len(args) > 1 else "bookworm"
    arch = args[2] if len(args) > 2 else "amd64"
    print(ensure_cache(cache_dir(), release, arch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
