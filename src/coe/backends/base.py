"""The backend contract, the sampling settings every backend sends explicitly, and prompt rendering."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from coe.errors import CoeError, ConfigError
from coe.registry import Registry

__all__ = ["GenerationSettings", "Generation", "Backend", "BACKENDS", "make_backend", "render_prompt", "chat_prompt",
           "with_retries"]

SEED_PREFILL = "<think></think>\n"  # the seed's literal thinking-off prefill, available as an option


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling and serving settings; defaults follow the seed (thinking off, temperature 0.6)."""

    model: str = ""
    temperature: float = 0.6
    repeat_penalty: float = 1.05
    num_ctx: int = 8192
    max_new_tokens: int = 16384
    think: bool = False
    prefill: str | None = None  # text the assistant turn starts with (e.g. SEED_PREFILL)
    system: str | None = None
    url: str = ""
    tokenizer: str | None = None  # HF dir whose chat template renders prompts for raw-prompt endpoints
    timeout_s: float = 600.0
    retries: int = 3
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """One completion: what was sent (messages or rendered prompt), the raw output and why it stopped."""

    prompt: str | list
    output: str
    finish_reason: str
    seconds: float


class Backend(Protocol):
    """What every backend provides."""

    def generate(self, messages: list[dict]) -> Generation: ...

    def close(self) -> None: ...


BACKENDS: Registry = Registry(
    "backend",
    {
        "transformers": "coe.backends.local:TransformersBackend",
        "ollama": "coe.backends.http:OllamaBackend",
        "openai": "coe.backends.http:OpenAIBackend",
        "llamacpp": "coe.backends.http:LlamaCppServerBackend",
        "llamacpp-local": "coe.backends.llamacpp_local:LlamaCppBackend",
    },
)


def make_backend(name: str, settings: GenerationSettings) -> Backend:
    """The backend called ``name`` (see ``BACKENDS``), started with ``settings``."""
    return BACKENDS.get(name)(settings)


def messages_for(prompt: str, settings: GenerationSettings) -> list[dict]:
    """A chat: the optional system prompt, then the user's prompt."""
    system = [{"role": "system", "content": settings.system}] if settings.system else []
    return [*system, {"role": "user", "content": prompt}]


def render_prompt(tokenizer, messages: list[dict], settings: GenerationSettings) -> str:
    """The chat rendered as the model sees it, thinking off (the template's own switch), plus any prefill."""
    if tokenizer is None:
        raise ConfigError("this backend sends a rendered prompt: set the generation tokenizer (an HF dir with a chat template)")
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=settings.think
    )
    return text + (settings.prefill or "")


def chat_prompt(tokenizer, messages: list[dict], settings: GenerationSettings) -> str:
    """:func:`render_prompt` with the tokenizer's chat template; a base model without one gets the turns as plain text."""
    if getattr(tokenizer, "chat_template", None):
        return render_prompt(tokenizer, messages, settings)
    return "\n".join(m["content"] for m in messages) + "\n" + (settings.prefill or "")


def with_retries(call: Callable[[], Generation], retries: int, what: str) -> Generation:
    """Run ``call``, retrying transient failures (connection errors, timeouts, 5xx, 429) with backoff: 1 s, 2 s, 4 s, ..."""
    for attempt in range(retries + 1):
        try:
            return call()
        except (OSError, TimeoutError, _Transient) as exc:
            if attempt == retries:
                raise CoeError(f"{what} failed after {retries + 1} attempts: {exc}") from exc
            time.sleep(2.0**attempt)
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A server answer worth retrying (5xx, 429)."""
