"""docker's json-file log driver: one JSON object per line,
    {"log": "text\\n", "stream": "stdout", "time": "2026-11-29T11:30:00.123456789Z"}
in <container>/json.log, rotated to json.log.1, .2, ... when --log-opt max-size is
reached, keeping --log-opt max-file files in all. stdout and stderr stay apart (the
stream field); a line longer than 16 KiB is split, as docker does."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from corral import fastjson
from corral.errors import ConfigError

LOG_NAME = "json.log"
_SPLIT = 16 * 1024
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
}


def parse_size(text: str) -> int:
    t = text.strip().lower()
    num = t.rstrip("kmgb")
    unit = t[len(num) :]
    if not num.isdigit() or unit not in _UNITS:
        raise ConfigError(f"invalid size {text!r} (e.g. 10m, 512k)")
    return int(num) * _UNITS[unit]


def log_options(opts: dict[str, str]) -> tuple[int, int]:
    """(max bytes per file or 0 for unlimited, files kept)."""
    unknown = set(opts) - {"max-size", "max-file"}
    if unknown:
        raise ConfigError(
            f"unknown log option(s): {', '.join(sorted(unknown))} (max-size, max-file)"
        )
    size = parse_size(opts["max-size"]) if "max-size" in opts else 0
    files = int(opts.get("max-file", "1"))
    if files < 1:
        raise ConfigError("--log-opt max-file must be at least 1")
    return size, files


def timestamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    ns = int((t % 1) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ns:09d}Z"


class LogWriter:
    def __init__(self, directory: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = os.path.join(directory, LOG_NAME)
        self.max_size = max_size
        self.max_files = max_files
        self.file = open(self.path, "ab")  # noqa: SIM115 - lives as long as the monitor
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Whole lines go out now; a trailing partial line waits for its end (or flush)."""
        buf = self.partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= _SPLIT:
                if len(buf) >= _SPLIT:
                    self._line(stream, buf[:_SPLIT])
                    buf = buf[_SPLIT:]
                    continue
                break
            self._line(stream, buf[: nl + 1])
            buf = buf[nl + 1 :]
        self.partial[stream] = buf

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._line(stream, rest)
        self.partial = {"stdout": b"", "stderr": b""}
        self.file.flush()

    def _line(self, stream: str, data: bytes) -> None:
        record = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": timestamp()}
        line = (fastjson.dumps(record) + "\n").encode()
        if self.max_size and self.file.tell() + len(line) > self.max_size and self.file.tell() > 0:
            self._rotate()
        self.file.write(line)
        self.file.flush()

    def _rotate(self) -> None:
        self.file.close()
        if self.max_files <= 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        self.file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self.flush()
        self.file.close()


def files_oldest_first(directory: str) -> list[str]:
    base = os.path.join(directory, LOG_NAME)
    rotated = []
    i = 1
    while os.path.exists(f"{base}.{i}"):
        rotated.append(f"{base}.{i}")
        i += 1
    return [*reversed(rotated), base]


def read(directory: str, since: float | None = None) -> Iterator[dict[str, str]]:
    for path in files_oldest_first(directory):
        try:
            with open(path, "rb") as f:
                for raw in f:
                    try:
                        record = fastjson.loads(raw)
                    except ValueError:
                        continue  # a line cut by a crash mid-write
                    if since is not None and _epoch(record.get("time", "")) < since:
                        continue
                    yield record
        except FileNotFoundError:
            continue


def _epoch(stamp: str) -> float:
    try:
        base, _, frac = stamp.rstrip("Z").partition(".")
        return (
            time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
            - time.timezone
            + float(f"0.{frac or 0}")
        )
    except ValueError:
        return 0.0


def parse_since(text: str) -> float:
    """docker's --since: a duration (10m, 1h30m, 45s) before now, or a timestamp."""
    import re

    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if m and any(m.groups()):
        h, mi, s = (float(g or 0) for g in m.groups())
        return time.time() - (h * 3600 + mi * 60 + s)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    epoch = _epoch(text if "T" in text else text + "T00:00:00")
    if epoch == 0.0:
        raise ConfigError(f"invalid --since {text!r}: a duration (10m) or a timestamp")
    return epoch
