"""Exception types for errors a user can cause and fix.

Everything that a user can trigger (a missing file, a mask for another model,
``keep < top_k``, a corrupt GGUF, an unknown family) raises :class:`CoeError`
or a subclass, with a message that says what was expected, what was found and
what to change. The CLI prints the message without a traceback.
"""

from __future__ import annotations

__all__ = ["CoeError", "FormatError", "ConfigError"]


class CoeError(Exception):
    """An error the user can fix; its message says how."""


class FormatError(CoeError):
    """A file is missing, corrupt, truncated, or not in the expected format."""


class ConfigError(CoeError):
    """A setting or an argument is invalid for this model or artifact."""
