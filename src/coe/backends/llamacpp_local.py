"""The llama.cpp backend in-process: a GGUF through llama-cpp-python, thinking off.

The prompt is rendered with the HF tokenizer's chat template when
``settings.tokenizer`` names one, else with the GGUF's own
``tokenizer.chat_template`` (Jinja, sandboxed, ``enable_thinking`` passed as
the HF path does), else the turns as plain text (a base model such as the
demo's). Sampling uses the settings' temperature, repeat penalty and seed
only (llama.cpp's top-k/top-p/min-p filters off, as the transformers backend);
``settings.extra`` adds llama-cpp-python ``create_completion`` arguments.

Flash attention is on, as llama.cpp's own default ("auto") would have it;
llama-cpp-python's ``Llama`` turns it off, and without it llama.cpp computes
Gemma 4's unscaled attention scores against an F16 KV cache in F16, which on
the tiny test model moves logits by up to 0.3 (with it: within 1e-3 of
transformers).
"""

from __future__ import annotations

import threading
import time

from coe.backends.base import Generation, GenerationSettings, chat_prompt
from coe.errors import ConfigError
from coe.llamacpp.runtime import require_llama_cpp

__all__ = ["LlamaCppBackend"]


class _GGUFTemplate:
    """The GGUF's chat template with the slice of the HF tokenizer API that :func:`chat_prompt` uses."""

    def __init__(self, template: str, bos: str, eos: str) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.chat_template = template
        self._template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
        self._special = {"bos_token": bos, "eos_token": eos}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs) -> str:
        return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt, **self._special, **kwargs)


class LlamaCppBackend:
    """``settings.model`` is a GGUF file."""

    def __init__(self, settings: GenerationSettings) -> None:
        llama_cpp = require_llama_cpp()
        if not settings.model.endswith(".gguf"):
            raise ConfigError(f"the llamacpp-local backend runs a .gguf file, got model={settings.model!r}")
        self.settings = settings
        self.llm = llama_cpp.Llama(settings.model, n_ctx=settings.num_ctx, seed=settings.seed, flash_attn=True, verbose=False)
        self.template = self._template()
        self._lock = threading.Lock()

    def _template(self):
        if self.settings.tokenizer:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.settings.tokenizer)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        return _GGUFTemplate(template, self._piece(self.llm.token_bos()), self._piece(self.llm.token_eos()))

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode(errors="replace") if token >= 0 else ""

    def generate(self, messages: list[dict]) -> Generation:
        s = self.settings
        prompt = chat_prompt(self.template, messages, s)
        bos = self._piece(self.llm.token_bos())
        tokens = self.llm.tokenize(prompt.encode(), add_bos=not (bos and prompt.startswith(bos)), special=True)
        room = max(1, min(s.max_new_tokens, s.num_ctx - len(tokens)))
        sampling = {"temperature": s.temperature, "repeat_penalty": s.repeat_penalty, "seed": s.seed,
                    "top_k": 0, "top_p": 1.0, "min_p": 0.0, **s.extra}  # fmt: skip
        with self._lock:  # one llama.cpp context: concurrent callers (generate_all's workers) take turns
            start = time.perf_counter()
            out = self.llm.create_completion(tokens, max_tokens=room, **sampling)
        choice = out["choices"][0]
        return Generation(prompt, (s.prefill or "") + choice["text"], choice.get("finish_reason") or "", time.perf_counter() - start)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None
