"""LXC's operations over Corral's engine.

A container is a directory `<lxcpath>/<name>` with LXC's `config` and (for the dir backend)
`rootfs/`, and an engine record of the same name (kind "lxc") that the engine's monitor,
runtime and networks run. The config is the truth: every start reads it again and writes
the OCI bundle from it, so editing the file takes effect on the next start, as in LXC.
"""

from __future__ import annotations

import contextlib
import os
import time

from corral.engine import lifecycle
from corral.engine.model import ContainerSpec, Status
from corral.engine.store import ContainerStore, validate_name
from corral.errors import ConfigError, ContainerError, ContainerNotFound, InvalidState
from corral.lxc import config as lxcconfig

# bundle (the OCI spec builder) and storage (mounts) are imported by the steps that
# need them: `ls`, `info`, `stop` and `attach` do without.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from corral.lxc.config import LxcConfig

STATES = {Status.RUNNING: "RUNNING", Status.PAUSED: "FROZEN", Status.RESTARTING: "RUNNING"}
# In a container's directory while `create` works on it: the creating process's pid and
# start time. One whose creator is gone (killed) is half made: the next create of that
# name, or destroy, removes it.
CREATING = ".creating"


class Lxc:
    def __init__(self, data_root: str, lxcpath: str = "") -> None:
        self.data_root = data_root
        self.lxcpath = lxcpath or os.path.join(data_root, "lxc")
        self.store = ContainerStore(data_root)

    # ----- where things are ----------------------------------------------------------------

    def dir(self, name: str) -> str:
        return os.path.join(self.lxcpath, name)

    def config_path(self, name: str) -> str:
        return os.path.join(self.dir(name), "config")

    def names(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.lxcpath))
        except FileNotFoundError:
            return []
        return [
            n
            for n in entries
            if os.path.exists(self.config_path(n))
            and not os.path.exists(os.path.join(self.dir(n), CREATING))
        ]

    def half_made(self, name: str) -> bool:
        """A create of this container was killed before it finished."""
        from corral.kernel.identity import process_alive

        try:
            with open(os.path.join(self.dir(name), CREATING)) as f:
                pid, start = (int(x) for x in f.read().split())
        except FileNotFoundError:
            return False
        except ValueError:
            return True  # killed while writing the marker itself
        return not process_alive(pid, start)

    def _make_marked_dir(self, name: str) -> None:
        """The container's directory, appearing with its .creating marker already in it
        (made aside, then renamed): no moment exists where a kill leaves it unmarked.
        0755: an unprivileged container's root (a mapped uid) must reach its rootfs."""
        import glob
        import shutil

        from corral.kernel.identity import process_alive
        from corral.kernel.process import process_start_time

        os.makedirs(self.lxcpath, exist_ok=True)
        for stale in glob.glob(os.path.join(self.lxcpath, f".{name}.*.new")):
            pid = stale.rsplit(".", 2)[-2]
            if not pid.isdigit() or not process_alive(int(pid), 0):
                shutil.rmtree(stale, ignore_errors=True)  # a creator killed before the rename
        aside = os.path.join(self.lxcpath, f".{name}.{os.getpid()}.new")
        os.mkdir(aside, 0o755)
        with open(os.path.join(aside, CREATING), "w") as f:
            f.write(f"{os.getpid()} {process_start_time(os.getpid())}\n")
        try:
            os.rename(aside, self.dir(name))
        except OSError:
            shutil.rmtree(aside, ignore_errors=True)
            raise ContainerError(f"container {name} already exists in {self.lxcpath}") from None

    def _remove_half_made(self, name: str) -> None:
        import shutil

        with contextlib.suppress(ContainerNotFound):
            cid = self.store.resolve(name)
            if self.store.load_spec(cid).kind == "lxc":
                lifecycle.remove_everything(self.data_root, cid)
        shutil.rmtree(self.dir(name), ignore_errors=True)

    def load(self, name: str, path: str = "") -> LxcConfig:
        if not path and not os.path.exists(self.config_path(name)):
            raise ContainerNotFound(f"{name}: no such container in {self.lxcpath}")
        return lxcconfig.load(path or self.config_path(name))

    def cid(self, name: str) -> str:
        if not os.path.exists(self.config_path(name)):
            raise ContainerNotFound(f"{name}: no such container in {self.lxcpath}")
        try:
            cid = self.store.resolve(name)
        except ContainerNotFound:
            raise ContainerError(f"{name}: the engine has no record of it (recreate it)") from None
        if self.store.load_spec(cid).kind != "lxc":
            raise ContainerError(f"{name} is an application container of `corral run`, not LXC's")
        return cid

    def state(self, name: str) -> str:
        """LXC's state words. A container whose init has exited is STOPPED even while its
        monitor still records that and cleans up."""
        state = lifecycle.current(self.store, self.cid(name))
        if state.status in (Status.RUNNING, Status.PAUSED) and not lifecycle.alive(
            state.pid, state.pid_start
        ):
            return "STOPPED"
        return STATES.get(state.status, "STOPPED")

    # ----- create, destroy, copy -------------------------------------------------------------

    def create(
        self, name: str, template: str, args: list[str], config_file: str = "", network: str = ""
    ) -> None:
        """A new container from a template (or from a config file alone: -t none)."""
        import shutil

        from corral.lxc import bundle
        from corral.lxc.templates import TEMPLATES

        validate_name(name)
        if template != "none" and template not in TEMPLATES:
            raise ConfigError(f"unknown template {template!r} (busybox, debian, host, oci)")
        base = ""
        if config_file:
            lxcconfig.load(config_file)  # errors with the line, before anything is made
            with open(config_file) as f:
                base = f.read()
        if self.half_made(name):
            self._remove_half_made(name)
        if os.path.exists(self.dir(name)):
            raise ContainerError(f"container {name} already exists in {self.lxcpath}")
        with contextlib.suppress(ContainerNotFound):
            self.store.resolve(name)
            raise ContainerError(f"the name {name} is taken by another container")
        self._make_marked_dir(name)
        try:
            entries = []
            if template != "none":
                rootfs = os.path.join(self.dir(name), "rootfs")
                os.mkdir(rootfs, 0o755)
                network = network or _default_link()
                entries = TEMPLATES[template](rootfs, name, args, network, self.data_root)
            text = f"# Template used to create this container: {template}\n" + base
            # The file given with -f wins over the template for the keys it sets.
            given = {line.split("=")[0].strip() for line in base.splitlines() if "=" in line}
            text += lxcconfig.render([e for e in entries if e[0] not in given])
            text = _expand_hwaddr_lines(text)  # as lxc-create: the random MAC is kept
            with open(self.config_path(name), "w") as f:
                f.write(text)
            config = self.load(name)
            bundle.rootfs_dir(config, self.config_path(name))
            _shift_ownership(config, os.path.join(self.dir(name), "rootfs"))
            lifecycle.create_system(self.data_root, self.engine_spec(name, config))
            os.unlink(os.path.join(self.dir(name), CREATING))  # complete
        except BaseException:
            with contextlib.suppress(ContainerNotFound):
                lifecycle.remove_everything(self.data_root, self.store.resolve(name))
            shutil.rmtree(self.dir(name), ignore_errors=True)
            raise

    def engine_spec(self, name: str, config: LxcConfig) -> ContainerSpec:
        mode, networks = _networks(self.data_root, config)
        return ContainerSpec(
            image="lxc",
            name=name,
            tty=True,
            stdin_open=True,
            stop_signal=str(config.signal_halt),
            network=mode,
            networks=networks,
            cgroup_params=[f"{key}={value}" for key, value in config.cgroup],
            labels={"io.corral.lxc.path": self.lxcpath},
            kind="lxc",
        )

    def destroy(self, name: str, force: bool = False, snapshots: bool = False) -> list[str]:
        """Remove the container (and, with snapshots, the copies that depend on it)."""
        import shutil

        from corral.lxc import storage

        if self.half_made(name):
            self._remove_half_made(name)
            return [name]
        clones = self.clones_of(name)
        if clones and not snapshots:
            raise InvalidState(f"{name} has snapshot copies ({', '.join(clones)}): use -s")
        if self.state(name) != "STOPPED":
            if not force:
                raise InvalidState(f"{name} is running: stop it first or use -f")
            self.stop(name, kill=True)
        removed = []
        for clone in clones:
            removed += self.destroy(clone, force=True, snapshots=True)
        cid = self.cid(name)
        storage.unmount(self.load(name), self.dir(name))
        lifecycle.remove_everything(self.data_root, cid)
        shutil.rmtree(self.dir(name))
        return [*removed, name]

    def clones_of(self, name: str) -> list[str]:
        rootfs = os.path.join(self.dir(name), "rootfs")
        found = []
        for other in self.names():
            if other == name:
                continue
            with contextlib.suppress(ConfigError):
                path = self.load(other).rootfs
                if path.startswith("overlay:") and path.split(":")[1] in (rootfs, self.dir(name)):
                    found.append(other)
        return found

    def copy(self, name: str, new: str, snapshot: bool = False) -> None:
        """A clone: a full copy of the rootfs, or (snapshot) an overlay on top of it."""
        import shutil
        import subprocess

        from corral.lxc import bundle

        validate_name(new)
        config = self.load(name)
        if os.path.exists(self.dir(new)):
            raise ContainerError(f"container {new} already exists in {self.lxcpath}")
        if snapshot and self.state(name) != "STOPPED":
            raise InvalidState(f"{name} is running: a snapshot copy needs it stopped")
        source = bundle.rootfs_dir(config, self.config_path(name))
        if source.startswith("overlay:"):
            raise ContainerError(f"{name} is a snapshot itself: copy it without -s")
        if self.half_made(new):
            self._remove_half_made(new)
        self._make_marked_dir(new)
        try:
            if snapshot:
                for d in ("delta0", "work", "rootfs"):
                    os.mkdir(os.path.join(self.dir(new), d), 0o755)
                rootfs = f"overlay:{source}:{os.path.join(self.dir(new), 'delta0')}"
            else:
                rootfs = f"dir:{os.path.join(self.dir(new), 'rootfs')}"
                target = os.path.join(self.dir(new), "rootfs")
                subprocess.run(["cp", "-a", "--reflink=auto", source, target], check=True)
            lines = []
            with open(self.config_path(name)) as f:
                for line in f:
                    key = line.split("=")[0].strip()
                    if key == "lxc.rootfs.path":
                        line = f"lxc.rootfs.path = {rootfs}\n"
                    elif key == "lxc.uts.name":
                        line = f"lxc.uts.name = {new}\n"
                    lines.append(line)
            with open(self.config_path(new), "w") as f:
                f.writelines(lines)
            lifecycle.create_system(self.data_root, self.engine_spec(new, self.load(new)))
            os.unlink(os.path.join(self.dir(new), CREATING))  # complete
        except BaseException:
            shutil.rmtree(self.dir(new), ignore_errors=True)
            raise

    # ----- start, stop, execute --------------------------------------------------------------

    def prepare(self, name: str, config_file: str = "", args: list[str] | None = None) -> str:
        """Write the engine's spec and bundle from the config; the container's id."""
        from corral.lxc import bundle, storage

        cid = self.cid(name)
        if self.state(name) != "STOPPED":
            raise InvalidState(f"{name} is already running")
        self._wait_monitor_done(name, cid)
        config = self.load(name, config_file)
        spec = self.engine_spec(name, config)
        rootfs = bundle.rootfs_dir(config, config_file or self.config_path(name))
        if rootfs.startswith("overlay:"):
            storage.mount(config, self.dir(name))
        if args:
            spec.tty = False
            args = [bundle.INIT_PATH, "--", *args]
            if not os.path.exists(bundle.TINI):
                raise ContainerError("lxc execute needs tini (apt-get install tini)")
        with self.store.lock(cid):
            old = self.store.load_spec(cid)
            spec.created = old.created
            self.store.save_spec(cid, spec)
        oci = bundle.build(config, name, cid, rootfs, spec, args=args, terminal=spec.tty)
        lifecycle.write_config(self.data_root, cid, oci)
        return cid

    def _wait_monitor_done(self, name: str, cid: str) -> None:
        """A container is STOPPED once its init is gone (stop -k returns then), but its
        monitor may still be recording the exit and cleaning up. An LXC container has no
        restart policy, so a live monitor with a dead init is finishing: wait for it, or
        the next start finds the record still saying "running"."""
        state = self.store.load_state(cid)
        if not lifecycle.wait_process_gone(state.monitor_pid, state.monitor_start, 30):
            raise ContainerError(f"{name}: its monitor is still cleaning up after 30 s")

    def start(self, name: str, config_file: str = "") -> int:
        from corral.engine.runtimes import RuntimeFailed
        from corral.lxc import storage

        cid = self.prepare(name, config_file)
        try:
            return lifecycle.spawn_monitor(self.data_root, cid)
        except RuntimeFailed as err:
            storage.unmount(self.load(name, config_file), self.dir(name))
            raise ContainerError(f"{name}: {err}") from None

    def stop(self, name: str, timeout: int = 60, kill: bool = False) -> None:
        from corral.lxc import storage

        cid = self.cid(name)
        if self.state(name) == "STOPPED":
            raise InvalidState(f"{name} is not running")
        config = self.load(name)
        if kill:
            state = lifecycle.current(self.store, cid)
            with contextlib.suppress(InvalidState):
                lifecycle.kill(self.data_root, cid, config.signal_stop)
            # Stopped when its init is gone, as for lxc-stop -k; the monitor's clean-up
            # goes on behind (start and destroy wait for it) unless it is dead already.
            if not lifecycle.wait_process_gone(state.pid, state.pid_start, 30):
                raise ContainerError(f"{name}: still running 30 s after SIGKILL")
            lifecycle.finalise_unwatched(self.data_root, cid)
        else:
            lifecycle.stop(self.data_root, cid, timeout)
        storage.unmount(config, self.dir(name))

    def attach_console(self, cid: str, escape: bytes) -> int:
        from corral.engine import attach
        from corral.engine.monitor import attach_path

        path = attach_path(os.environ.get("CORRAL_ROOT", "/run/corral"), cid)
        try:
            sock = attach.connect(path)
        except OSError:
            raise InvalidState("the container is not running") from None
        with sock:
            code = attach.relay(sock, stdin=True, tty=True, detach_keys=escape)
        return 0 if code == attach.DETACHED else code

    def execute(self, name: str, command: list[str]) -> int:
        """An application container: tini as pid 1 runs `command` and reaps; its exit code."""
        import socket
        import sys

        from corral.engine import attach
        from corral.engine.runtimes import RuntimeFailed
        from corral.lxc import storage

        cid = self.prepare(name, args=command)
        ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lifecycle.spawn_monitor(self.data_root, cid, client)
        except RuntimeFailed as err:
            print(f"corral: error: {err}", file=sys.stderr)
            return err.code
        finally:
            client.close()
        with ours:
            code = attach.relay(ours, stdin=True, tty=False, send_hello=False)
        self._wait_monitor_done(name, cid)
        storage.unmount(self.load(name), self.dir(name))
        return code

    def attach(self, name: str, command: list[str], clear_env: bool, env: list[str]) -> int:
        """Run a command in every namespace and the cgroup of the running container."""
        import sys

        from corral.engine.runtimes import LibraryRuntime, runtime_for

        cid = self.cid(name)
        if self.state(name) != "RUNNING":
            raise InvalidState(f"{name} is not running")
        argv = command or [_login_shell(self._rootfs_of(cid))]
        # --clear-env: PATH, container=lxc and the -v variables; else the caller's too
        extra = list(env) if clear_env else [*_caller_env(), *env]
        base = None
        if clear_env:
            from corral.lxc.bundle import DEFAULT_PATH

            base = [DEFAULT_PATH, "container=lxc"]
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        path = lifecycle.exec_process_file(
            self.data_root, cid, argv, env=extra, base_env=base, tty=tty
        )
        try:
            runtime = runtime_for(self.store.load_spec(cid).runtime)
            if isinstance(runtime, LibraryRuntime):  # in this process: no runtime start-up
                return runtime.exec_here(cid, path, tty=tty)
            import subprocess

            exec_argv = runtime.exec_argv(cid, path, tty=tty, detach=False)
            return subprocess.run(exec_argv, check=False).returncode
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _rootfs_of(self, cid: str) -> str:
        from corral import fastjson

        with open(os.path.join(self.store.bundle(cid), "config.json"), "rb") as f:
            root: str = fastjson.loads(f.read())["root"]["path"]
        return root

    # ----- freeze, cgroup, wait, info -------------------------------------------------------

    def freeze(self, name: str, frozen: bool) -> None:
        cid = self.cid(name)
        state = self.state(name)
        if state != ("RUNNING" if frozen else "FROZEN"):
            raise InvalidState(f"{name} is {state}")
        lifecycle.pause(self.data_root, cid, frozen)

    def cgroup(self, name: str, key: str, value: str | None) -> list[tuple[str, str]]:
        """Read (value None) or set one cgroup setting, live; v1 or v2 names either way."""
        from corral.cgroups import Mode, open_manager
        from corral.cgroups.params import files_for, parse_param

        cid = self.cid(name)
        if self.state(name) == "STOPPED":
            raise InvalidState(f"{name} is not running")
        manager = open_manager(parent=os.environ.get("CORRAL_CGROUP_PARENT") or "corral")
        version = 2 if manager.mode == Mode.V2 else 1
        if value is None:
            return [(f, manager.get(cid, f).strip()) for f in files_for(key, version)]
        manager.apply(cid, parse_param(key, value, version))
        return []

    def wait(self, name: str, states: list[str], timeout: float) -> bool:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        wanted = {s.upper() for s in states}
        while True:
            if self.state(name) in wanted:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def info(self, name: str) -> list[tuple[str, str]]:
        from corral.network.endpoints import endpoints_of

        cid = self.cid(name)
        status = self.state(name)
        rows = [("Name", name), ("State", status)]
        if status == "STOPPED":
            return rows
        state = lifecycle.current(self.store, cid)
        rows.append(("PID", str(state.pid)))
        endpoints, _ = endpoints_of(self.data_root, cid)
        rows += [("IP", e.ip) for e in endpoints]
        with contextlib.suppress(Exception):
            from corral.cgroups import open_manager

            manager = open_manager(parent=os.environ.get("CORRAL_CGROUP_PARENT") or "corral")
            stats = manager.stats(cid)
            rows.append(("CPU use", f"{(stats.cpu_usage_ns or 0) / 1e9:.2f} seconds"))
            rows.append(("Memory use", _human(stats.memory_usage or 0)))
        for e in endpoints:
            tx = _counter(e.host_veth, "rx_bytes")  # what the host side receives, it sent
            rx = _counter(e.host_veth, "tx_bytes")
            rows += [("Link", e.host_veth), (" TX bytes", _human(tx)), (" RX bytes", _human(rx)),
                     (" Total bytes", _human(tx + rx))]  # fmt: skip
        return rows

    def autostart(self, groups: list[str], list_only: bool = False) -> list[str]:
        """Start the containers marked lxc.start.auto (highest lxc.start.order first),
        waiting lxc.start.delay seconds after each."""
        chosen = []
        for name in self.names():
            with contextlib.suppress(ConfigError):
                config = self.load(name)
                if not config.start_auto:
                    continue
                if groups and not set(groups) & set(config.groups or [""]):
                    continue
                chosen.append((-config.start_order, name, config.start_delay))
        started = []
        for _, name, delay in sorted(chosen):
            if list_only:
                started.append(name)
                continue
            if self.state(name) != "STOPPED":
                continue
            self.start(name)
            started.append(name)
            if delay:
                time.sleep(delay)
        return started


# ----- helpers ---------------------------------------------------------------------------


def _default_link() -> str:
    from corral.network import settings

    return settings.default_bridge()


def _networks(data_root: str, config: LxcConfig) -> tuple[str, list[dict[str, Any]]]:
    """lxc.net.N -> the engine's network mode and attachments. A veth's link names one of
    Corral's networks, by name or by its bridge device (corral0 is the default network)."""
    from corral.network import settings
    from corral.network.state import NetworkState

    if not config.nets:
        return "none", []
    state = NetworkState(data_root)
    attachments: list[dict[str, Any]] = []
    for index in sorted(config.nets):
        net = config.nets[index]
        kind = net.get("type", "")
        if kind == "none":
            if len(config.nets) > 1:
                raise ConfigError("lxc.net type none shares the host's network: it must be alone")
            return "host", []
        if kind == "empty":
            continue
        if kind != "veth":
            raise ConfigError(f"lxc.net.{index}.type is missing")
        link = net.get("link", "")
        if link in ("", settings.default_bridge(), settings.DEFAULT_NETWORK):
            network = settings.DEFAULT_NETWORK
        elif state.exists(link):
            network = link
        else:
            by_bridge = [n.name for n in state.networks() if n.bridge == link]
            if not by_bridge:
                raise ConfigError(f"lxc.net.{index}.link = {link}: no Corral network or bridge "
                                  "of that name (corral network ls)")  # fmt: skip
            network = by_bridge[0]
        address = net.get("ipv4.address", "").split("/")[0]
        attachments.append(
            {
                "name": network,
                "aliases": [],
                "ip": address,
                "ifname": net.get("name", ""),
                "mac": _expand_mac(net.get("hwaddr", "")),
                "mtu": int(net.get("mtu") or 0),
                "gateway": net.get("ipv4.gateway", ""),
                "up": net.get("flags") == "up",
            }
        )
    if not attachments:
        return "none", []
    return attachments[0]["name"], attachments


def _expand_hwaddr_lines(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        key, sep, value = line.partition("=")
        if sep and key.strip().startswith("lxc.net.") and key.strip().endswith(".hwaddr"):
            line = f"{key}= {_expand_mac(value.strip())}\n"
        lines.append(line)
    return "".join(lines)


def _expand_mac(text: str) -> str:
    """LXC's `xx` placeholders in lxc.net.N.hwaddr become random hex digits."""
    import secrets

    return "".join(secrets.choice("0123456789abcdef") if c == "x" else c for c in text)


def _shift_ownership(config: LxcConfig, rootfs: str) -> None:
    """An unprivileged container (lxc.idmap) owns its rootfs as its mapped root: files of
    uid/gid N become host_start + N, as LXC's templates leave them."""
    if not config.idmaps or not os.path.isdir(rootfs):
        return
    uid = next((h for k, c, h, _ in config.idmaps if k in ("u", "b") and c == 0), None)
    gid = next((h for k, c, h, _ in config.idmaps if k in ("g", "b") and c == 0), None)
    if uid is None or gid is None:
        raise ConfigError("lxc.idmap must map container id 0 (root) for uid and gid")
    for top, dirs, files in os.walk(rootfs):
        for entry in [top, *(os.path.join(top, n) for n in dirs + files)]:
            st = os.lstat(entry)
            os.lchown(entry, uid + st.st_uid, gid + st.st_gid)


def _login_shell(rootfs: str) -> str:
    with contextlib.suppress(OSError), open(os.path.join(rootfs, "etc/passwd")) as f:
        for line in f:
            fields = line.strip().split(":")
            if len(fields) >= 7 and fields[2] == "0" and fields[6]:
                return fields[6]
    return "/bin/sh"


def _caller_env() -> list[str]:
    skip = ("LS_COLORS", "SSH_", "DBUS_", "XDG_", "DISPLAY")
    return [f"{k}={v}" for k, v in os.environ.items() if not k.startswith(skip)]


def _counter(link: str, name: str) -> int:
    try:
        with open(f"/sys/class/net/{link}/statistics/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def _human(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.2f} {unit}" if unit != "bytes" else f"{int(value)} bytes"
        value /= 1024
    return str(n)
