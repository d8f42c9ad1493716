"""Error types shared across dcim and the `path: message` rendering of validation errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from pydantic import ValidationError

# Where in a config tree: ("devices", 3, "profile") is rendered devices[3].profile.
Loc = tuple[int | str, ...]


class ConfigError(Exception):
    """A config or profile that cannot be used; carries every problem as `path: message`."""

    def __init__(self, errors: Sequence[str], warnings: Sequence[str] = ()):
        super().__init__("\n".join(errors))
        self.errors = list(errors)
        # Deprecations found on the way, so check-config can show them beside the errors.
        self.warnings = list(warnings)


def format_loc(loc: Sequence[int | str]) -> str:
    """Render a pydantic location as `devices[3].profile`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required",
}


def format_validation_error(exc: ValidationError, drop_prefix: int = 0,
                            known_keys: Callable[[Loc], Sequence[str]] | None = None) -> list[str]:
    """Turn a pydantic ValidationError into `path: message` lines (inputs never echoed).

    known_keys(loc of a mapping) lists the keys it accepts, for a did-you-mean on an unknown key.
    """
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [p for p in err["loc"][drop_prefix:] if not _is_union_tag(p)]
        message = _MESSAGES.get(err["type"], err["msg"])
        message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and known_keys is not None and err["loc"]:
            close = difflib.get_close_matches(str(err["loc"][-1]),
                                              known_keys(err["loc"][:-1]), n=1)
            message += f" (did you mean '{close[0]}'?)" if close else ""
        path = format_loc(loc)
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried (e.g. "function-after[...]"); users never wrote it
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "list[str]"})
