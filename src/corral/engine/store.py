"""Containers on disk, under <data root>/containers:

    <id>/spec.json          what was asked (model.ContainerSpec)
    <id>/state.json         what is (model.ContainerState), replaced atomically
    <id>/lock               flock: one command at a time changes a container
    <id>/bundle/config.json the OCI runtime spec made from the two
    <id>/json.log[.N]       logs (logs.py)
    <id>/attach.sock        the monitor's socket for attach and foreground runs
    names/<name>            the id a name belongs to (made with O_EXCL: names are unique)

Every file is written to a temporary name and renamed, so a crash of any Corral process
leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator

from corral import fastjson
from corral.engine.model import (
    ContainerSpec,
    ContainerState,
    spec_from,
    state_from,
    to_json,
)
from corral.errors import ContainerError, ContainerExists, ContainerNotFound

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ADJECTIVES = (
    "amber",
    "brave",
    "calm",
    "clever",
    "dusty",
    "eager",
    "fuzzy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lively",
    "merry",
    "nimble",
    "patient",
    "quiet",
    "rapid",
    "shy",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "witty",
    "zen",
)
_ANIMALS = (
    "alpaca",
    "bison",
    "camel",
    "donkey",
    "egret",
    "ferret",
    "gazelle",
    "heron",
    "ibex",
    "jackal",
    "koala",
    "llama",
    "moose",
    "newt",
    "okapi",
    "pony",
    "quail",
    "rhea",
    "stallion",
    "tapir",
    "urial",
    "vicuna",
    "wapiti",
    "yak",
    "zebu",
)


def generate_name() -> str:
    a, b = os.urandom(2)  # not `random`: it costs an import of hashlib and more
    return f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_ANIMALS[b % len(_ANIMALS)]}"


def validate_name(name: str) -> str:
    name = name.removeprefix("/")
    if not _NAME.match(name) or len(name) > 128:
        raise ContainerError(
            f"invalid container name {name!r}: use letters, digits and _.- "
            "(starting with a letter or digit)"
        )
    return name


class ContainerStore:
    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "containers")
        self.names_dir = os.path.join(self.root, "names")
        os.makedirs(self.names_dir, 0o700, exist_ok=True)

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def bundle(self, cid: str) -> str:
        return os.path.join(self.root, cid, "bundle")

    # ----- creation and lookup -----------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        """Reserve a name and an id and write the spec; returns the id."""
        cid = os.urandom(32).hex()
        generated = not spec.name
        for _attempt in range(50):
            name = generate_name() if generated else validate_name(spec.name)
            try:
                self._claim_name(name, cid)
                break
            except ContainerExists:
                if not generated:
                    owner = self.name_owner(name) or "?"
                    raise ContainerExists(
                        f"the container name {name!r} is already in use by container "
                        f"{owner[:12]}: remove or rename that container"
                    ) from None
        else:
            raise ContainerError("could not generate a free container name")
        spec.name = name
        try:
            os.mkdir(self.dir(cid), 0o700)
            os.mkdir(self.bundle(cid), 0o700)
            self.save_spec(cid, spec)
            self.save_state(cid, ContainerState())
        except BaseException:
            self.remove(cid, name)
            raise
        return cid

    def _claim_name(self, name: str, cid: str) -> None:
        path = os.path.join(self.names_dir, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            owner = self.name_owner(name)
            if owner and os.path.isdir(self.dir(owner)):
                raise ContainerExists(name) from None
            # a name left by a container whose removal was interrupted: reclaim it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cid)

    def name_owner(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.names_dir, name)) as f:
                return f.read().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def specs(self) -> Iterator[tuple[str, ContainerSpec]]:
        """(id, spec) of every container whose spec can be read (one being removed or
        half made is left out)."""
        for cid in self.ids():
            try:
                yield cid, self.load_spec(cid)
            except ContainerError:
                continue

    def ids(self) -> list[str]:
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if len(e) == 64 and os.path.isdir(self.dir(e)))

    def resolve(self, ref: str) -> str:
        """A full id, a name, or a unique id prefix -> the id."""
        ref = ref.removeprefix("/")
        if len(ref) == 64 and os.path.isdir(self.dir(ref)):
            return ref
        owner = self.name_owner(ref) if _NAME.match(ref) else None
        if owner and os.path.isdir(self.dir(owner)):
            return owner
        if ref and all(c in "0123456789abcdef" for c in ref):
            found = [cid for cid in self.ids() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ContainerError(f"container id prefix {ref!r} is ambiguous")
        raise ContainerNotFound(f"no such container: {ref}")

    def rename(self, cid: str, new: str) -> None:
        spec = self.load_spec(cid)
        new = validate_name(new)
        try:
            self._claim_name(new, cid)
        except ContainerExists:
            raise ContainerExists(f"the container name {new!r} is already in use") from None
        old = spec.name
        spec.name = new
        self.save_spec(cid, spec)
        if self.name_owner(old) == cid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.names_dir, old))

    # ----- files ---------------------------------------------------------------------------

    def _write(self, path: str, data: object) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(data))
        os.replace(tmp, path)

    def _read(self, cid: str, name: str) -> dict[str, object]:
        path = os.path.join(self.dir(cid), name)
        try:
            with open(path, "rb") as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container: {cid[:12]}") from None
        except ValueError as err:
            raise ContainerError(f"{path}: unreadable ({err})") from None
        if not isinstance(data, dict):
            raise ContainerError(f"{path}: not a JSON object")
        return data

    def save_spec(self, cid: str, spec: ContainerSpec) -> None:
        self._write(os.path.join(self.dir(cid), "spec.json"), to_json(spec))

    def load_spec(self, cid: str) -> ContainerSpec:
        return spec_from(self._read(cid, "spec.json"))

    def save_state(self, cid: str, state: ContainerState) -> None:
        self._write(os.path.join(self.dir(cid), "state.json"), to_json(state))

    def load_state(self, cid: str) -> ContainerState:
        try:
            return state_from(self._read(cid, "state.json"))
        except ContainerNotFound:
            if os.path.isdir(self.dir(cid)):
                return ContainerState()  # killed between mkdir and the first write
            raise

    @contextlib.contextmanager
    def lock(self, cid: str) -> Iterator[None]:
        path = os.path.join(self.dir(cid), "lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container: {cid[:12]}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove(self, cid: str, name: str | None = None) -> None:
        if name is None:
            with contextlib.suppress(ContainerError):
                name = self.load_spec(cid).name
        import shutil

        shutil.rmtree(self.dir(cid), ignore_errors=True)
        if name and self.name_owner(name) == cid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.names_dir, name))
