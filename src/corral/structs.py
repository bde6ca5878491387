"""Plain-data records without the cost of `dataclasses`.

`@dataclass` writes each class's methods as source and exec()s it (and imports `inspect`):
about 0.5 ms a class, 15 ms for the classes a container start touches. `record` builds the
same behaviour from generic functions in microseconds. Type checkers see it as a dataclass
(PEP 681 `dataclass_transform`), so constructors are checked as before.
"""

from __future__ import annotations

# `typing` costs ~9 ms to import (it pulls in `re`): never at run time on the start path.
# mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_kwargs: object) -> object:
        return lambda f: f


class FrozenInstanceError(AttributeError):
    pass


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A default made fresh for each instance (lists, dicts)."""
    return _Factory(default_factory)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names: tuple[str, ...] = cls.__record_fields__
    defaults: dict[str, Any] = cls.__record_defaults__
    if len(args) > len(names):
        raise TypeError(
            f"{cls.__name__}() takes {len(names)} positional arguments, got {len(args)}"
        )
    setter = object.__setattr__
    for i, name in enumerate(names):
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got two values for {name!r}")
            value = args[i]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif name in defaults:
            value = defaults[name]
            if isinstance(value, _Factory):
                value = value.make()
        else:
            raise TypeError(f"{cls.__name__}() missing argument {name!r}")
        setter(self, name, value)
    if kwargs:
        raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kwargs)}")


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__record_fields__)


def _eq(self: Any, other: object) -> bool:
    if type(other) is not type(self):
        return NotImplemented  # type: ignore[no-any-return]
    same: bool = _values(self) == _values(other)
    return same


def _repr(self: Any) -> str:
    body = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_fields__)
    return f"{type(self).__name__}({body})"


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    """Class decorator: __init__, __eq__, __repr__ (and __hash__, immutability if frozen)."""

    def wrap(klass: type[T]) -> type[T]:
        names: list[str] = []
        defaults: dict[str, Any] = {}
        for base in reversed(klass.__mro__[1:]):
            names += [n for n in getattr(base, "__record_fields__", ()) if n not in names]
            defaults.update(getattr(base, "__record_defaults__", {}))
        # Not inspect.get_annotations: `inspect` is what this module exists to avoid.
        for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063
            if name.startswith("__") or name in names:
                continue
            names.append(name)
            if name in klass.__dict__:
                defaults[name] = klass.__dict__[name]
        attrs: dict[str, Any] = {
            "__record_fields__": tuple(names),
            "__record_defaults__": defaults,
            "__init__": _init,
            "__eq__": _eq,
            "__repr__": _repr,
        }
        if frozen:
            attrs["__hash__"] = _hash
            attrs["__setattr__"] = _frozen_setattr
            attrs["__delattr__"] = _frozen_setattr
        else:
            attrs["__hash__"] = None
        for key, value in attrs.items():
            setattr(klass, key, value)
        return klass

    return wrap if cls is None else wrap(cls)


def fields(obj: object) -> tuple[str, ...]:
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    return names


def replace(obj: T, **changes: Any) -> T:
    values = {n: getattr(obj, n) for n in fields(obj)}
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: object) -> dict[str, Any]:
    """Shallow: nested records stay records (Corral's records hold plain values)."""
    return {n: getattr(obj, n) for n in fields(obj)}
