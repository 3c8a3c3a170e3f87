"""An Ollama Modelfile for a specialist GGUF, with the seed's serving settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["SEED_PARAMETERS", "modelfile"]

# The seed's settings: sampling at 0.6, mild repetition penalty, 8k context, long answers, thinking off.
SEED_PARAMETERS = {"temperature": 0.6, "repeat_penalty": 1.05, "num_ctx": 8192, "num_predict": 16384}


def modelfile(gguf: str | os.PathLike[str], system: str) -> str:
    """Modelfile text. Thinking is switched off per request (``"think": false`` in Ollama's API, ``--think=false`` in its CLI)."""
    lines = [f"FROM {Path(gguf).resolve()}"]
    lines += [f"PARAMETER {key} {value}" for key, value in SEED_PARAMETERS.items()]
    lines.append(f"SYSTEM {json.dumps(system)}")
    return "\n".join(lines) + "\n"
