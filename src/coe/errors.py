"""Exception types for errors a user can cause and fix.

Everything that a user can trigger (a missing file, a mask for another model,
``keep < top_k``, a corrupt GGUF, an unknown family) raises :class:`CoeError`
or a subclass, with a message that says what was expected, what was found and
what to change. The CLI prints the message without a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["CoeError", "FormatError", "ConfigError", "exit_on_user_error"]


class CoeError(Exception):
    """An error the user can fix; its message says how."""


class FormatError(CoeError):
    """A file is missing, corrupt, truncated, or not in the expected format."""


class ConfigError(CoeError):
    """A setting or an argument is invalid for this model or artifact."""


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """For front doors: print a CoeError as one ``Error:`` line on stderr and exit 1, without a traceback."""
    try:
        yield
    except CoeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
