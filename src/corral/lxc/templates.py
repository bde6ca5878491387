"""Templates fill a new container's rootfs and return its config lines (as lxc-create's do).

busybox   a system container from the host's busybox-static: busybox init, an inittab
          whose shutdown is quick (halt = SIGUSR1: busybox init's "halt"), a root shell
          on the console
host      the host's /usr bind mounted read-only, a fresh /etc, busybox init from it
oci       an image from Corral's store or a registry (--url docker://HOST/NAME:TAG or
          --image NAME), flattened into the rootfs: what lxc-oci does with skopeo and
          umoci; an application container running the image's entrypoint
debian    debootstrap from the host's Debian mirror (--release, --arch, --mirror), cached
          under <data-root>/lxc-cache, so the next create copies instead of downloading
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from corral.errors import ConfigError, ContainerError

Entries = list[tuple[str, Any]]
BUSYBOX = "/bin/busybox"

INITTAB = """\
::sysinit:/etc/init.d/rcS
console::respawn:-/bin/sh
::shutdown:/bin/sync
"""
RCS = """\
#!/bin/sh
# Corral's busybox template: nothing to start but the console shell.
mkdir -p /run /tmp /var/log
"""
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _system_etc(rootfs: str, name: str, shell: str = "/bin/sh") -> None:
    _write(os.path.join(rootfs, "etc/inittab"), INITTAB.replace("/bin/sh", shell))
    _write(os.path.join(rootfs, "etc/init.d/rcS"), RCS, 0o755)
    _write(os.path.join(rootfs, "etc/passwd"), PASSWD.replace("/bin/sh", shell))
    _write(os.path.join(rootfs, "etc/group"), GROUP)
    _write(os.path.join(rootfs, "etc/hostname"), name + "\n")
    _write(os.path.join(rootfs, "etc/hosts"), f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n")
    _write(os.path.join(rootfs, "etc/fstab"), "")
    for d in ("proc", "sys", "dev", "tmp", "root", "run", "var/log", "mnt"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)


def _system_config(rootfs: str, name: str, network: str) -> Entries:
    entries: Entries = [
        ("lxc.rootfs.path", f"dir:{rootfs}"),
        ("lxc.uts.name", name),
        ("lxc.signal.halt", "SIGUSR1"),  # busybox init: halt
    ]
    return entries + _net_entries(network)


def _net_entries(network: str) -> Entries:
    if not network:
        return [("lxc.net.0.type", "empty")]
    return [("lxc.net.0.type", "veth"), ("lxc.net.0.link", network), ("lxc.net.0.flags", "up")]


def busybox(rootfs: str, name: str, args: list[str], network: str, data_root: str) -> Entries:
    if not os.path.exists(BUSYBOX):
        raise ContainerError("the busybox template needs busybox-static (Debian: busybox-static)")
    _options(args, "busybox")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy2(os.path.realpath(BUSYBOX), os.path.join(rootfs, "bin/busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        path = os.path.join(rootfs, applet)
        if applet == "bin/busybox" or os.path.lexists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink("/bin/busybox", path)
    _system_etc(rootfs, name)
    return _system_config(rootfs, name, network)


def host(rootfs: str, name: str, args: list[str], network: str, data_root: str) -> Entries:
    """The host's /usr, read-only; its merged-/usr links; busybox init from the host."""
    _options(args, "host")
    os.makedirs(os.path.join(rootfs, "usr"), exist_ok=True)
    for link in ("bin", "sbin", "lib", "lib64"):
        if os.path.islink(f"/{link}"):
            os.symlink(os.readlink(f"/{link}"), os.path.join(rootfs, link))
    _system_etc(rootfs, name)
    entries = _system_config(rootfs, name, network)
    entries += [
        ("lxc.mount.entry", "/usr usr none bind,ro 0 0"),
        ("lxc.init.cmd", "/usr/bin/busybox init"),
    ]
    return entries


def oci(rootfs: str, name: str, args: list[str], network: str, data_root: str) -> Entries:
    """An image flattened into the rootfs; its entrypoint, env and workdir as the init."""
    parser = argparse.ArgumentParser(prog="corral lxc create -t oci --", add_help=False)
    parser.add_argument("--url", default="")
    parser.add_argument("--image", default="")
    opts = _parse(parser, args)
    ref = opts.image or opts.url.removeprefix("docker://")
    if not ref:
        raise ConfigError("the oci template needs --url docker://HOST/NAME:TAG or --image NAME")
    from corral.engine.images import resolve
    from corral.engine.lifecycle import image_store
    from corral.image import snapshot

    image = resolve(data_root, ref, quiet=True)
    snapshot.flatten(image_store(data_root), image, rootfs)
    config: dict[str, Any] = image.config
    img = config.get("config") or {}
    argv = [*(img.get("Entrypoint") or []), *(img.get("Cmd") or [])]
    if not argv:
        raise ConfigError(f"image {ref} has no entrypoint or command")
    import shlex

    entries: Entries = [
        ("lxc.rootfs.path", f"dir:{rootfs}"),
        ("lxc.uts.name", name),
        ("lxc.init.cmd", shlex.join(argv)),
        ("lxc.signal.halt", "SIGTERM"),  # an application, not an init: TERM stops it
    ]
    if img.get("WorkingDir"):
        entries.append(("lxc.init.cwd", img["WorkingDir"]))
    entries += [("lxc.environment", e) for e in img.get("Env") or [] if "=" in e]
    for d in ("proc", "sys", "dev", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    return entries + _net_entries(network)


def debian(rootfs: str, name: str, args: list[str], network: str, data_root: str) -> Entries:
    from corral.lxc import debian as deb

    parser = argparse.ArgumentParser(prog="corral lxc create -t debian --", add_help=False)
    parser.add_argument("-r", "--release", default="bookworm")
    parser.add_argument("-a", "--arch", default="amd64")
    parser.add_argument("--mirror", default="")
    opts = _parse(parser, args)
    deb.install(deb.cache_dir(), rootfs, opts.release, opts.arch, opts.mirror)
    _write(os.path.join(rootfs, "etc/hostname"), name + "\n")
    _write(os.path.join(rootfs, "etc/hosts"), f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n")
    entries = [e for e in _system_config(rootfs, name, network) if e[0] != "lxc.signal.halt"]
    entries.append(("lxc.signal.halt", "SIGPWR"))  # sysvinit: powerfail -> shutdown
    return entries


def _options(args: list[str], template: str) -> None:
    if args:
        raise ConfigError(f"the {template} template takes no options (got {' '.join(args)})")


def _parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    opts, rest = parser.parse_known_args(args)
    if rest:
        raise ConfigError(f"{parser.prog}: unknown option(s) {' '.join(rest)}")
    return opts


TEMPLATES: dict[str, Callable[[str, str, list[str], str, str], Entries]] = {
    "busybox": busybox,
    "host": host,
    "oci": oci,
    "debian": debian,
}
