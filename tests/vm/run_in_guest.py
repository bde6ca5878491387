"""Run a command on a cgroup v2-only kernel, with the host's / as the guest's read-only
root, and return its output and exit status.

    .venv/bin/python tests/vm/run_in_guest.py [--vm uml|qemu] [--timeout 900] -- COMMAND...

Two guests, the way runc's CI tests cgroup v2:
- uml (default): User-Mode Linux (Debian's user-mode-linux), root over hostfs. Boots in
  2-4 s; cgroup2 with cpu, io, memory and pids; one CPU, no cpuset, no time namespace.
- qemu: Debian's kernel under QEMU (software emulation: a stock kernel hangs at boot
  under KVM here), root over virtio-9p, a small initramfs (make_initramfs.py). Boots in
  ~6 s but runs Python ~25x slower; it has cpuset, the time namespace and 2 CPUs, so only
  the tests that need those run there.
Debian's UML (6.1, and 6.12 too) cannot run on a host whose XSAVE state is larger than
the buffer it was built with (AVX-512, AMX: it panics at its first process, "ptrace set fp
regs failed, errno = 14"). `--uml-boots` says whether it runs here; `make test-v2` runs
the tier's cgroup v2 core under QEMU where it does not.
The guest (guest-init.sh) mounts cgroup2 only, enables every controller it has, runs the
command from the current directory, writes its exit status to a results directory shared
with the host, and powers off.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
UML = shutil.which("linux.uml") or "/usr/bin/linux.uml"
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
INITRAMFS_CACHE = Path("/var/tmp/corral-vm")


def _uml_argv(results: Path, memory: str) -> list[str] | None:
    if not os.path.exists(UML):
        return None
    # A scratch disk (/dev/ubda, 98:0) for the I/O controller tests: hostfs is no block device.
    with open(results / "disk.img", "wb") as disk:
        disk.truncate(64 << 20)
    return [
        UML,
        f"mem={memory}",
        "root=/dev/root",
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
        f"init={HERE / 'guest-init.sh'}",
        f"CORRAL_RESULTS_HOSTFS={results}",
        f"CORRAL_GUEST_WORKDIR={os.getcwd()}",
        f"ubd0={results / 'disk.img'}",
        "CORRAL_TEST_BLOCK_DEVICE=98:0",
        "con0=fd:0,fd:1",
        "con=null",
    ]


def _qemu_argv(results: Path, memory: str) -> list[str] | None:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not os.path.exists(QEMU) or not kernels:
        return None
    kernel = kernels[-1]
    version = kernel.name.removeprefix("vmlinuz-")
    initrd = INITRAMFS_CACHE / f"initramfs-{version}.gz"
    if not initrd.exists():
        INITRAMFS_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(HERE / "make_initramfs.py"), version, str(initrd)], check=True
        )
    append = " ".join(
        [
            "console=ttyS0",
            "quiet",
            "panic=-1",
            f"corral_init={HERE / 'guest-init.sh'}",
            "CORRAL_RESULTS_9P=1",
            f"CORRAL_GUEST_WORKDIR={os.getcwd()}",
        ]
    )
    return [
        QEMU,
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        memory.replace("M", "M"),
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        append,
        "-fsdev",
        "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=root,mount_tag=rootfs",
        "-fsdev",
        f"local,id=results,path={results},security_model=none,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=results,mount_tag=results",
    ]


def run(
    command: list[str], timeout: float, vm: str = "uml", memory: str = "1536M", quiet: bool = False
) -> int:
    results = Path(tempfile.mkdtemp(prefix="corral-guest-"))
    ram = Path(tempfile.mkdtemp(prefix="corral-uml-", dir="/dev/shm"))
    try:
        env = " ".join(
            f"export {k}={shlex.quote(v)};"
            for k, v in os.environ.items()
            if k.startswith("CORRAL_")
        )
        (results / "run.sh").write_text(
            f"cd {shlex.quote(os.getcwd())} || exit 125\n{env}\nexec {shlex.join(command)}\n"
        )
        argv = _uml_argv(results, memory) if vm == "uml" else _qemu_argv(results, memory)
        if argv is None:
            print(
                f"run_in_guest: the {vm} guest is not installed (scripts/setup.sh)", file=sys.stderr
            )
            return 125
        with open(results / "console.log", "w") as console:
            # UML runs each guest process as a host process: its own session, so that a
            # timeout can stop all of them at once.
            guest = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(ram)},
                start_new_session=True,
            )
            try:
                guest.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"run_in_guest: timed out after {timeout:.0f}s", file=sys.stderr)
                os.killpg(guest.pid, signal.SIGKILL)
                guest.wait()
        output = results / "output"
        if output.exists():
            sys.stdout.write(output.read_text(errors="replace"))
        status = results / "status"
        if not status.exists():
            if not quiet:
                print("run_in_guest: the guest did not report a status; console:", file=sys.stderr)
                print(
                    (results / "console.log").read_text(errors="replace")[-3000:], file=sys.stderr
                )
            return 125
        return int(status.read_text().strip() or 125)
    finally:
        shutil.rmtree(results, ignore_errors=True)
        shutil.rmtree(ram, ignore_errors=True)


def uml_boots() -> bool:
    """Whether the UML guest runs a command on this host (see the module's docstring)."""
    if not os.path.exists(UML):
        return False
    with open(os.devnull, "w") as null:
        saved = os.dup(1)
        try:
            os.dup2(null.fileno(), 1)
            return run(["/bin/true"], timeout=60, vm="uml", quiet=True) == 0
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--vm", choices=("uml", "qemu"), default="uml")
    ap.add_argument("--uml-boots", action="store_true", help="only say (exit status 0 or 1) "
                    "whether the UML guest runs on this host")  # fmt: skip
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.uml_boots:
        return 0 if uml_boots() else 1
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given")
    return run(command, args.timeout, args.vm)


if __name__ == "__main__":
    sys.exit(main())
