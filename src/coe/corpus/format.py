"""Render documents as the model will see them: raw text, or its own chat template with thinking off.

A rendered document is a list of segments ``{"text", "count"}``. ``count:
response`` marks only the response (the last assistant turn) as counted, so the
profile measures what the model does while answering; ``count: all`` counts
every token.
"""

from __future__ import annotations

from coe.corpus.sources import Document
from coe.errors import ConfigError, FormatError

__all__ = ["render"]

FORMATS = ("raw", "chat")
COUNTS = ("all", "response")


def _messages(doc: Document) -> list[dict]:
    if doc.messages is not None:
        return [dict(m) for m in doc.messages]
    return [{"role": "user", "content": doc.prompt}, {"role": "assistant", "content": doc.response}]


def render(doc: Document, fmt: str = "raw", count: str = "all", tokenizer=None) -> list[dict]:
    """The document's segments (see module docstring)."""
    if fmt not in FORMATS or count not in COUNTS:
        raise ConfigError(f"format must be one of {FORMATS} and count one of {COUNTS}; got {fmt!r}, {count!r}")
    if doc.text is not None:
        return [{"text": doc.text, "count": True}]  # no turns: nothing to template, everything is content
    messages = _messages(doc)
    if messages[-1].get("role") != "assistant":
        raise FormatError(f"{doc.source}: the last message must be the assistant's, found {messages[-1].get('role')!r}")
    if fmt == "raw":
        prompt = "\n".join(m["content"] for m in messages[:-1]) + "\n"
        response = messages[-1]["content"]
    else:
        prompt, response = _chat(messages, tokenizer, doc.source)
    return [{"text": prompt, "count": count == "all"}, {"text": response, "count": True}]


def _chat(messages: list[dict], tokenizer, source: str) -> tuple[str, str]:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ConfigError("format: chat needs a tokenizer with a chat template (give the parent's --tokenizer)")
    template = lambda msgs, gen: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen, enable_thinking=False  # thinking off, where the template has it
    )
    prefix, full = template(messages[:-1], True), template(messages, False)
    if not full.startswith(prefix):
        raise FormatError(f"{source}: the chat template renders the conversation's start differently with its answer")
    bos = tokenizer.bos_token or ""
    if bos and prefix.startswith(bos):  # the profiler adds BOS itself
        prefix = prefix[len(bos) :]
        full = full[len(bos) :]
    return prefix, full[len(prefix) :]
