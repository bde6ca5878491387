"""Run a command on a cgroup v2-only kernel: boot User-Mode Linux with the host's / as its
read-only root, run the command there, return its output and exit status.

    .venv/bin/python tests/vm/run_in_guest.py [--timeout 900] -- COMMAND...

The guest (tests/vm/guest-init.sh) mounts cgroup2 only, enables every controller it has,
runs the command from the current directory, writes its exit status to a results
directory shared with the host over hostfs, and powers off. UML boots in 2-4 s; Python in
it runs several times slower than on the host, so give it generous timeouts.
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


def run(command: list[str], timeout: float, memory: str = "1536M") -> int:
    if not os.path.exists(UML):
        print("run_in_guest: user-mode-linux is not installed", file=sys.stderr)
        return 125
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
        argv = [
            UML,
            f"mem={memory}",
            "root=/dev/root",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={HERE / 'guest-init.sh'}",
            f"CORRAL_RESULTS_HOSTFS={results}",
            f"CORRAL_GUEST_WORKDIR={os.getcwd()}",
            "con0=fd:0,fd:1",
            "con=null",
        ]
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
            print("run_in_guest: the guest did not report a status; console:", file=sys.stderr)
            print((results / "console.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            return 125
        return int(status.read_text().strip() or 125)
    finally:
        shutil.rmtree(results, ignore_errors=True)
        shutil.rmtree(ram, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given")
    return run(command, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
