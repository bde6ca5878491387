"""Pull progress: bars per layer on a terminal, one line per state change otherwise,
nothing with --quiet. Called from the download threads, so every method takes the lock."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """The quiet base: records nothing, prints nothing."""

    def start(self, key: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def status(self, key: str, text: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress(Progress):
    """One line per layer state change, as `docker pull` prints when not on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def status(self, key: str, text: str) -> None:
        with self.lock:
            self.out.write(f"{_short(key)}: {text}\n")
            self.out.flush()

    def message(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()


class BarProgress(Progress):
    """A bar per layer, redrawn in place at most 10 times a second."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.rows: dict[str, list[object]] = {}  # key -> [status, done, total]
        self.drawn = 0
        self.last = 0.0

    def start(self, key: str, total: int | None) -> None:
        with self.lock:
            self.rows[key] = ["Waiting", 0, total]
            self._draw(force=True)

    def advance(self, key: str, n: int) -> None:
        with self.lock:
            row = self.rows.setdefault(key, ["Downloading", 0, None])
            first = row[0] != "Downloading" or row[1] == 0
            row[0] = "Downloading"
            row[1] = int(row[1]) + n  # type: ignore[call-overload]
            self._draw(force=first)  # the bar shows at once, then at most 10 times a second

    def status(self, key: str, text: str) -> None:
        with self.lock:
            self.rows.setdefault(key, [text, 0, None])[0] = text
            self._draw(force=True)

    def message(self, text: str) -> None:
        with self.lock:
            self._clear()
            self.out.write(text + "\n")
            self._draw(force=True)

    def finish(self) -> None:
        with self.lock:
            self._draw(force=True)
            self.drawn = 0
            self.out.flush()

    def _clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self._clear()
        for key, (status, done, total) in self.rows.items():
            line = f"{_short(key)}: {status}"
            if status == "Downloading" and isinstance(total, int) and total > 0:
                filled = int(self.WIDTH * min(int(done), total) / total)  # type: ignore[call-overload]
                bar = (
                    "=" * filled
                    + (">" if filled < self.WIDTH else "")
                    + " " * (self.WIDTH - filled - 1)
                )
                line += f" [{bar}] {_human(int(done))}/{_human(total)}"  # type: ignore[call-overload]
            self.out.write(line + "\n")
        self.drawn = len(self.rows)
        self.out.flush()


def for_stream(out: TextIO | None = None, quiet: bool = False) -> Progress:
    out = out or sys.stderr
    if quiet:
        return Progress()
    return BarProgress(out) if out.isatty() else LineProgress(out)


def _short(key: str) -> str:
    return key.split(":", 1)[-1][:12]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{n}B"
