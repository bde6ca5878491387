"""The monitor: one small process per running container, what conmon is to podman.

It makes the container independent of the command that started it. It creates and starts
the container through the OCI runtime, holds its stdio (pipes, or the terminal's master),
writes the logs, serves `attach` clients on a unix socket, runs health checks, reaps the
container's init (it is a child subreaper, so it gets it whatever runtime forked it),
records the exit code and an OOM kill, applies the restart policy, and at the end deletes
the runtime's container, unmounts the rootfs and, for --rm, removes the container.

Its life: `corral run` forks it (lifecycle.spawn_monitor); in that fork, with the CLI's
modules loaded, it creates and starts the container (launch); then it execs a lean
`python -I -S` that imports only this module's needs, keeping its pid (the container
stays its child) and the fds it passes on (main, "resume"). Later heavy steps run in
short-lived children it forks (monitor_work), so its memory stays small.

Attach protocol (attach.py is the client): frames of an 8-byte header — stream, 3 zero
bytes, big-endian length — then the payload. Streams from the monitor: 1 stdout, 2 stderr,
3 exit (payload: the exit code), 6 started. From a client: 0 stdin, 4 resize ("rows cols"),
5 stdin closed. A client first sends one line of JSON: {"stdin": bool}.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import struct
import sys
import time

from corral import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_CLOSED, STARTED = 0, 1, 2, 3, 4, 5, 6
HEADER = struct.Struct(">B3xI")
QUICK_EXIT = 0.015  # seconds the pre-exec monitor waits for a container that exits at once


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def socket_dir(run_root: str) -> str:
    path = os.path.join(run_root, "engine", "sock")
    os.makedirs(path, 0o700, exist_ok=True)
    return path


def attach_path(run_root: str, cid: str) -> str:
    return os.path.join(socket_dir(run_root), f"{cid[:32]}.attach")


def console_path(run_root: str, cid: str) -> str:
    return os.path.join(socket_dir(run_root), f"{cid[:32]}.console")


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.hello: dict[str, Any] | None = None

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False


class Monitor:
    def __init__(
        self, data_root: str, cid: str, client_fd: int | None, status_fd: int | None
    ) -> None:
        from corral.engine.store import ContainerStore

        self.data_root = data_root
        self.cid = cid
        self.store = ContainerStore(data_root)
        self.dir = self.store.dir(cid)
        self.spec = self.store.load_spec(cid)
        self.run_root = os.environ.get("CORRAL_ROOT", "/run/corral")
        self.sel = selectors.DefaultSelector()
        self.clients: list[Client] = []
        self.status_fd = status_fd
        self.initial = None
        if client_fd is not None:
            self.initial = Client(socket.socket(fileno=client_fd))
        self.exit_code: int | None = None
        self.init_pid = 0
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.outputs: dict[int, str] = {}
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.logs: Any = None
        self.removed = False  # by the exit helper (--rm)
        self.final_code: int | None = None

    # ----- state --------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        with self.store.lock(self.cid):
            state = self.store.load_state(self.cid)
            for key, value in changes.items():
                setattr(state, key, value)
            self.store.save_state(self.cid, state)

    def report(self, line: str) -> None:
        """Tell the starting command how the start went (once)."""
        if self.status_fd is None:
            return
        try:
            os.write(self.status_fd, (line + "\n").encode())
        except OSError:
            pass
        os.close(self.status_fd)
        self.status_fd = None

    # ----- main loop ------------------------------------------------------------------------

    def setup(self, resumed: dict[str, Any] | None = None) -> None:
        """Logs, signals, the attach socket; a resumed monitor adopts the fds its pre-exec
        self made (see launch)."""
        from corral.engine import logs

        size, files = logs.log_options(self.spec.log_opts)
        self.logs = logs.LogWriter(self.dir, size, files)
        signal.signal(signal.SIGCHLD, lambda *_: os.write(self.wakeup_w, b"c"))
        # Handlers, not SIG_IGN: an ignored signal would be inherited by the container.
        signal.signal(signal.SIGTERM, lambda *_: None)  # stopping is `corral stop`'s job
        signal.signal(signal.SIGHUP, lambda *_: None)
        self.sel.register(self.wakeup_r, selectors.EVENT_READ, ("wakeup", None))
        if resumed is None:
            self.listener = self._listen()
            if self.initial is not None:
                self.initial.hello = {"stdin": self.spec.stdin_open}
                self._add_client(self.initial)
            return
        self.listener = socket.socket(fileno=resumed["listener"])
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, ("listener", None))
        for fd, hello in resumed["clients"]:
            client = Client(socket.socket(fileno=fd))
            client.hello = hello
            self._add_client(client)
        for fd, stream in resumed["outputs"]:
            self.outputs[fd] = stream
            self.sel.register(fd, selectors.EVENT_READ, ("output", stream))
        self.stdin_w = resumed["stdin"]
        self.master = resumed["master"]
        self.init_pid = resumed["init"]

    def _add_client(self, client: Client) -> None:
        self.clients.append(client)
        self.sel.register(client.sock, selectors.EVENT_READ, ("client", client))

    def run(self, first_start_done: bool = False) -> int:
        backoff = 0.1
        first = True
        while True:
            started = time.monotonic()
            if not (first and first_start_done) and not self.start_container():
                break  # could not start: recorded and reported already
            first = False
            code = self.supervise()
            if self.removed:  # --rm: done
                break
            state = self.store.load_state(self.cid)
            if not self._should_restart(code, state):
                break
            backoff = 0.1 if time.monotonic() - started > 10 else min(backoff * 2, 60.0)
            self.update(status="restarting", restart_count=state.restart_count + 1)
            if not self._sleep_unless_stopped(backoff):
                self.update(status="exited")
                break
        self.finish()
        return 0

    def exec_lean(self) -> None:
        """Replace this process (forked from the `corral` command, with all its modules)
        by a fresh interpreter that loads only the monitor: the same pid, so the container
        stays our child; the fds it needs are passed on."""
        import corral

        resumed = {
            "listener": self.listener.fileno(),
            "clients": [[c.sock.fileno(), c.hello] for c in self.clients],
            "outputs": [[fd, stream] for fd, stream in self.outputs.items()],
            "stdin": self.stdin_w,
            "master": self.master,
            "init": self.init_pid,
        }
        keep = [self.listener.fileno(), *(c.sock.fileno() for c in self.clients), *self.outputs]
        keep += [fd for fd in (self.stdin_w, self.master) if fd is not None]
        for fd in keep:
            os.set_inheritable(fd, True)
        self.logs.close()
        pkg_parent = os.path.dirname(os.path.dirname(corral.__file__))
        # -S skips site's start-up work; the helpers it forks still find the installed
        # libraries (pyroute2 for networks) through the site directories passed on.
        libs = os.pathsep.join(
            p for p in sys.path if p.endswith(("site-packages", "dist-packages"))
        )
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "sys.path += [p for p in sys.argv[2].split(':') if p]; "
            "from corral.engine.monitor import main; sys.exit(main(sys.argv[3:]))"
        )
        os.execv(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", code, pkg_parent, libs, self.data_root, self.cid,
             "resume", fastjson.dumps(resumed)],
        )  # fmt: skip

    def _should_restart(self, code: int, state: Any) -> bool:
        policy = self.spec.restart
        if state.stop_requested or self.spec.auto_remove:
            return False
        if policy in ("always", "unless-stopped"):
            return True
        if policy == "on-failure" and code != 0:
            return self.spec.restart_max == 0 or state.restart_count < self.spec.restart_max
        return False

    def _sleep_unless_stopped(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.store.load_state(self.cid).stop_requested:
                return False
            self._poll(min(0.1, deadline - time.monotonic()))
        return True

    def start_container(self, in_process: bool = False) -> bool:
        """Create and start through the runtime (in a helper child, or in this process when
        it is the pre-exec monitor that has the modules loaded anyway). False: it failed,
        and that is recorded and reported."""
        self.exit_code = None
        stdio, child_ends = self._stdio()
        console = None
        if self.spec.tty:
            console = console_path(self.run_root, self.cid)
            console_sock = _listen_unix(console)
        runtime = self.spec.runtime
        try:
            pid = self._work(
                in_process,
                "create_and_start",
                self.data_root,
                self.cid,
                runtime,
                stdio,
                os.path.join(self.dir, "init.pid"),
                os.path.join(self.dir, "runtime.log"),
                console,
            )
            assert isinstance(pid, int)
            self.init_pid = pid
            if console:
                self.master = _receive_master(console_sock)
                self._apply_initial_size()
        except (HelperFailed, OSError) as err:
            code = err.code if isinstance(err, HelperFailed) else 125
            self._close_child_ends(child_ends)
            leftover = self.init_pid or getattr(err, "pid", 0)
            if leftover:
                _kill_quietly(leftover)
            try:
                self._helper("delete", runtime, self.cid)
            except HelperFailed:
                pass
            self.update(
                status="created" if not self.store.load_state(self.cid).started_at else "exited",
                exit_code=code,
                error=str(err),
                pid=0,
            )
            self.report(f"error {code} {err}")
            self._broadcast(frame(EXIT, str(code).encode()))
            return False
        finally:
            if console:
                console_sock.close()
                _unlink(console)
        self._close_child_ends(child_ends)
        self.update(
            status="running",
            pid=self.init_pid,
            pid_start=_start_time(self.init_pid),
            started_at=now(),
            error="",
            exit_code=0,
            oom_killed=False,
        )
        self.report(f"started {self.init_pid}")
        self._broadcast(frame(STARTED, b""))
        return True

    def supervise(self) -> int:
        """Relay and log until the container's init exits; record how it ended."""
        health = self._health_schedule()
        while self.exit_code is None:
            timeout = None
            if health is not None:
                timeout = max(0.0, health - time.monotonic())
            self._poll(timeout)
            if health is not None and time.monotonic() >= health and self.exit_code is None:
                health = self._health_check()
        self._drain_outputs()
        oom = False
        runtime = self.spec.runtime
        # --rm never restarts: the removal can go with the exit checks, in one child
        action = "oom_killed_then_remove" if self.spec.auto_remove else "oom_killed_then_delete"
        args = (runtime, self.cid, self.data_root)
        # No restart can follow: do it here (this process ends soon) and save a fork.
        last = self.spec.auto_remove or self.spec.restart == "no"
        try:
            oom = bool(self._work(last, action, *args))
            self.removed = self.spec.auto_remove
        except HelperFailed as err:
            self._note(f"{action}: {err}")
        code = 137 if oom and self.exit_code in (137, 0) else self.exit_code
        self.final_code = code
        if not self.removed:
            self.update(status="exited", exit_code=code, oom_killed=oom, finished_at=now(), pid=0)
        return code

    def _work(self, in_process: bool, action: str, *args: Any) -> Any:
        if not in_process:
            return self._helper(action, *args)
        from corral.engine import monitor_work

        try:
            return getattr(monitor_work, action)(*args)
        except Exception as err:
            raise HelperFailed(str(err), getattr(err, "code", 125), getattr(err, "pid", 0)) from err

    def _helper(self, action: str, *args: Any) -> Any:
        """Run monitor_work.<action>(*args) in a child; its result, or HelperFailed."""
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                from corral.kernel import prctl

                # `rm -f` kills the monitor: a helper must not go on creating behind it
                prctl.set_pdeathsig(signal.SIGKILL)
                from corral.engine import monitor_work

                payload = {"ok": getattr(monitor_work, action)(*args)}
            except BaseException as err:  # everything goes back to the monitor
                payload = {
                    "error": str(err) or repr(err),
                    "code": getattr(err, "code", 125),
                    "pid": getattr(err, "pid", 0),
                }
            os.write(w, fastjson.dumps(payload).encode())
            os._exit(0)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped by the SIGCHLD loop already
        try:
            result = fastjson.loads(b"".join(chunks)) if chunks else {"error": "helper died"}
        except ValueError:
            result = {"error": "helper sent garbage"}
        if "error" in result:
            raise HelperFailed(
                str(result["error"]), int(result.get("code", 125)), int(result.get("pid", 0))
            )
        return result["ok"]

    def finish(self) -> None:
        """Logs closed, rootfs unmounted (or, for --rm, everything removed), and only then
        the exit code to attached clients: `run --rm` returns when the container is gone."""
        code = self.final_code
        if code is None:
            code = self.store.load_state(self.cid).exit_code
        self.logs.close()
        self.listener.close()
        _unlink(attach_path(self.run_root, self.cid))
        if not self.removed:
            try:
                self._helper("teardown", self.data_root, self.cid, self.spec.auto_remove)
            except HelperFailed as err:
                self._note(f"teardown: {err}")
        self._broadcast(frame(EXIT, str(code).encode()))
        for client in self.clients:
            client.sock.close()

    # ----- I/O ---------------------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        path = attach_path(self.run_root, self.cid)
        sock = _listen_unix(path)
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, ("listener", None))
        return sock

    def _stdio(self) -> tuple[tuple[int, int, int], list[int]]:
        """The fds the container's init gets, and our copies of its ends to close."""
        if self.spec.tty:
            null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            return (null, null, null), [null]
        if self.spec.stdin_open:
            r, w = os.pipe2(os.O_CLOEXEC)
            self.stdin_w = w
            stdin = r
        else:
            stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            self.outputs[fd] = name
            self.sel.register(fd, selectors.EVENT_READ, ("output", name))
        return (stdin, out_w, err_w), [stdin, out_w, err_w]

    def _close_child_ends(self, fds: list[int]) -> None:
        for fd in set(fds):
            try:
                os.close(fd)
            except OSError:
                pass

    def _apply_initial_size(self) -> None:
        assert self.master is not None
        os.set_blocking(self.master, False)
        self.outputs[self.master] = "stdout"
        self.sel.register(self.master, selectors.EVENT_READ, ("output", "stdout"))

    def _poll(self, timeout: float | None) -> None:
        for key, _ in self.sel.select(timeout):
            kind, data = key.data
            if kind == "output":
                self._read_output(key.fd, data)
            elif kind == "listener":
                self._accept()
            elif kind == "client":
                self._client_input(data)
            elif kind == "wakeup":
                try:
                    os.read(self.wakeup_r, 4096)
                except BlockingIOError:
                    pass
                self._reap()

    def _read_output(self, fd: int, stream: str) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError as err:
            if err.errno != errno.EIO:  # EIO: the pty's other side is gone
                raise
            data = b""
        if not data:
            self.sel.unregister(fd)
            self.outputs.pop(fd, None)
            os.close(fd)
            if fd == self.master:
                self.master = None
            return False
        self.logs.write(stream, data)
        self._broadcast(frame(STDOUT if stream == "stdout" else STDERR, data))
        return True

    def _drain_outputs(self) -> None:
        """After init's exit: what is still in the pipes (everything in the container died
        with its pid namespace, so they reach EOF; the deadline guards a leaked writer)."""
        deadline = time.monotonic() + 2.0
        while self.outputs and time.monotonic() < deadline:
            for fd, stream in list(self.outputs.items()):
                while self._read_output(fd, stream):
                    try:
                        if not _readable(fd):
                            break
                    except OSError:
                        break
            if self.outputs:
                time.sleep(0.01)
        for fd in list(self.outputs):
            self.sel.unregister(fd)
            os.close(fd)
        self.outputs.clear()
        self.logs.flush()
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        client = Client(sock)
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, ("client", client))

    def _client_input(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.buf += data
        if client.hello is None:
            line, sep, rest = client.buf.partition(b"\n")
            if not sep:
                return
            try:
                client.hello = fastjson.loads(line)
            except ValueError:
                self._drop(client)
                return
            client.buf = rest
            if self.exit_code is not None and self.init_pid == 0:
                client.send(frame(EXIT, str(self.store.load_state(self.cid).exit_code).encode()))
        while len(client.buf) >= HEADER.size:
            stream, length = HEADER.unpack_from(client.buf)
            if len(client.buf) < HEADER.size + length:
                break
            payload = client.buf[HEADER.size : HEADER.size + length]
            client.buf = client.buf[HEADER.size + length :]
            self._client_frame(client, stream, payload)

    def _client_frame(self, client: Client, stream: int, payload: bytes) -> None:
        assert client.hello is not None
        if stream == STDIN and client.hello.get("stdin"):
            target = self.master if self.master is not None else self.stdin_w
            if target is not None:
                try:
                    os.write(target, payload)
                except OSError:
                    pass
        elif stream == STDIN_CLOSED and client.hello.get("stdin") and self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None
        elif stream == RESIZE and self.master is not None:
            try:
                rows, cols = (int(v) for v in payload.split())
                import fcntl
                import termios

                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except (ValueError, OSError):
                pass

    def _drop(self, client: Client) -> None:
        try:
            self.sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()
        if client in self.clients:
            self.clients.remove(client)

    def _broadcast(self, data: bytes) -> None:
        for client in list(self.clients):
            if client.hello is not None and not client.send(data):
                self._drop(client)

    # ----- processes ------------------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                if self.exit_code < 0:
                    self.exit_code = 128 - self.exit_code
                self.init_pid = 0

    # ----- health checks --------------------------------------------------------------------

    def _health_schedule(self) -> float | None:
        hc = self.spec.healthcheck
        if not hc or not hc.get("test") or hc["test"] == ["NONE"]:
            return None
        self.update(health="starting", health_failing=0, health_log=[])
        self.health_started = time.monotonic()
        return time.monotonic() + float(hc.get("interval", 30))

    def _health_check(self) -> float:
        hc = self.spec.healthcheck or {}
        test = list(hc["test"])
        argv = (
            test[1:]
            if test[0] == "CMD"
            else ["/bin/sh", "-c", " ".join(test[1:])]
            if test[0] == "CMD-SHELL"
            else test
        )
        start = time.time()
        try:
            code, output = self._helper(
                "health", self.data_root, self.cid, argv, float(hc.get("timeout", 30))
            )
        except Exception as err:
            code, output = -1, str(err)
        state = self.store.load_state(self.cid)
        failing = 0 if code == 0 else state.health_failing + 1
        in_grace = time.monotonic() - self.health_started < float(hc.get("start_period", 0))
        if code == 0:
            status = "healthy"
        elif failing >= int(hc.get("retries", 3)) and not in_grace:
            status = "unhealthy"
        else:
            status = state.health or "starting"
        entry = {
            "Start": stamp(start),
            "End": now(),
            "ExitCode": code,
            "Output": output[-4096:],
        }
        self.update(
            health=status, health_failing=failing, health_log=[*state.health_log[-4:], entry]
        )
        return time.monotonic() + float(hc.get("interval", 30))

    def _note(self, text: str) -> None:
        with open(os.path.join(self.dir, "monitor.log"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")


class HelperFailed(Exception):
    def __init__(self, message: str, code: int = 125, pid: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.pid = pid  # a container init created before the failure, to be killed


def now() -> str:
    return stamp(time.time())


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def _listen_unix(path: str) -> socket.socket:
    _unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def _receive_master(listener: socket.socket) -> int:
    listener.settimeout(30)
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise OSError("the runtime sent no terminal")
    return fds[0]


def _readable(fd: int) -> bool:
    import select

    r, _, _ = select.select([fd], [], [], 0.05)
    return bool(r)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def launch(data_root: str, cid: str, client_fd: int | None, status_fd: int) -> None:
    """In a child forked from `corral run/start` (modules loaded, no interpreter start-up):
    become the monitor, create and start the container here, then exec the lean monitor."""
    from corral.cgroups import warmup
    from corral.kernel import prctl

    # The container's init is moved into its cgroup ~15 ms from now: start the kernel's
    # grace period for that move here, so that it is over before the runtime makes the
    # cgroups (the helper holds the cgroup lock while it waits) and still fresh when init
    # is moved (a later writer within about a grace period gets the lock at once).
    warmup.start()
    monitor = Monitor(data_root, cid, client_fd, status_fd)
    try:
        prctl.set_child_subreaper(True)  # kept across execve
        monitor.update(monitor_pid=os.getpid(), monitor_start=_start_time(os.getpid()))
        monitor.setup()
        if not monitor.start_container(in_process=True):
            monitor.finish()
            return
        # A command that ends at once (`run --rm IMAGE true`) has nothing left to watch:
        # finish here, where the modules for the exit work are loaded, instead of paying
        # for a fresh interpreter first. Anything longer gets the lean monitor.
        deadline = time.monotonic() + QUICK_EXIT
        while monitor.exit_code is None and time.monotonic() < deadline:
            monitor._poll(max(0.0, deadline - time.monotonic()))
        if monitor.exit_code is not None:
            monitor.run(first_start_done=True)
            return
        monitor.exec_lean()
    except BaseException:
        import traceback

        monitor._note("monitor failed:\n" + traceback.format_exc())
        monitor.report("error 125 the monitor failed: see monitor.log")
        raise


def main(argv: list[str] | None = None) -> int:
    """The lean monitor, exec'd by launch() with the fds to adopt."""
    args = argv if argv is not None else sys.argv[1:]
    data_root, cid, mode, fds = args[0], args[1], args[2], args[3]
    if mode != "resume":
        raise SystemExit(f"corral monitor: unknown mode {mode!r}")
    monitor = Monitor(data_root, cid, None, None)
    try:
        monitor.setup(fastjson.loads(fds))
        monitor._reap()  # the container may have exited while we exec'd
        return monitor.run(first_start_done=True)
    except BaseException:
        import traceback

        monitor._note("monitor failed:\n" + traceback.format_exc())
        raise


if __name__ == "__main__":
    sys.exit(main())
