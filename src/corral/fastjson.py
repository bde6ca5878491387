"""JSON through CPython's C scanner and encoder (`_json`) without importing `json`.

`import json` pulls in `re` and `enum` (~8 ms); the runtime reads and writes small JSON
documents several times per container start, so it talks to `_json` directly. Errors are
still `json.JSONDecodeError` (imported only when there is one), with line and column.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


class _Context:
    """The attributes `_json.make_scanner` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]


def _error(message: str, doc: str, pos: int) -> Exception:
    from json import JSONDecodeError

    return JSONDecodeError(message, doc, pos)


def loads(data: str | bytes) -> Any:
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise _error("Expecting value", text, err.value) from None
    except SystemError:
        # Inside a document the C scanner reports errors through json.decoder, which is
        # not loaded: let the json module parse it and raise its precise error.
        import json

        return json.loads(text)
    if text[end:].strip(_WHITESPACE):
        raise _error("Extra data", text, end)
    return value


def _unserialisable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(value: object) -> str:
    """Compact JSON (no indentation)."""
    encode = _json.make_encoder(
        {}, _unserialisable, _json.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return "".join(encode(value, 0))
