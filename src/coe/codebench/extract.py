"""From a raw model output to the code to run.

Thinking and channel blocks are stripped (Gemma 4's ``<|channel>thought ...
<channel|>``, ``<think> ... </think>``); the last fenced code block is the
answer. An output with no fenced block counts as bare code if it parses as
Python, and as an extraction failure otherwise (its own verdict, distinct
from a wrong answer).
"""

from __future__ import annotations

import ast
import re

__all__ = ["strip_thinking", "extract_code"]

_THINKING = (re.compile(r"<\|channel>.*?<channel\|>", re.S), re.compile(r"<think>.*?</think>", re.S))
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)


def strip_thinking(text: str) -> str:
    """The output without thinking/channel blocks (an unclosed block drops everything after it)."""
    for pattern in _THINKING:
        text = pattern.sub("", text)
    for opener in ("<|channel>", "<think>"):
        if opener in text:
            text = text[: text.index(opener)]
    return text


def extract_code(output: str, context: str = "") -> str | None:
    """The code in a model output, or None when there is none.

    ``context`` is text the code continues (a HumanEval prompt, whose
    completion is a bare function body): bare code must parse after it.
    """
    text = strip_thinking(output)
    blocks = _FENCE.findall(text)
    if blocks:
        return blocks[-1][1]
    try:
        ast.parse(context + text)
    except SyntaxError:
        return None
    return text if text.strip() else None
