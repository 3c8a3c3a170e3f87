"""HTTP backends: Ollama, OpenAI-compatible servers and llama.cpp's server, with explicit sampling, thinking off.

* Ollama: ``/api/chat`` with ``"think": false``; with a prefill, ``/api/generate``
  with ``"raw": true`` and the prompt rendered by the model's chat template.
* OpenAI-compatible: ``/v1/chat/completions`` with
  ``chat_template_kwargs: {"enable_thinking": false}`` (vLLM, SGLang, llama.cpp)
  and, if set, ``reasoning_effort``; a prefill is sent as a final assistant
  message continued (``continue_final_message``).
* llama.cpp's server: ``/completion`` with the rendered prompt.

Sampling settings are always sent, since servers' defaults differ.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from coe.backends.base import Generation, GenerationSettings, _Transient, render_prompt, with_retries
from coe.errors import CoeError

__all__ = ["OllamaBackend", "OpenAIBackend", "LlamaCppServerBackend", "post_json"]


def post_json(url: str, payload: dict, timeout: float) -> dict:
    """POST JSON and decode the JSON reply; 5xx and 429 raise a retryable error, other errors a CoeError."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(f"HTTP {exc.code} from {url}: {body}") from exc
        raise CoeError(f"HTTP {exc.code} from {url}: {body}") from exc


class _HTTPBackend:
    def __init__(self, settings: GenerationSettings) -> None:
        if not settings.url:
            raise CoeError(f"{type(self).__name__} needs the server's URL (generation url=http://host:port)")
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._tokenizer = None

    def tokenizer(self):
        if self._tokenizer is None and self.settings.tokenizer:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.settings.tokenizer)
        return self._tokenizer

    def _post(self, path: str, payload: dict, prompt, parse) -> Generation:
        def call() -> Generation:
            start = time.perf_counter()
            output, reason = parse(post_json(self.url + path, payload, self.settings.timeout_s))
            return Generation(prompt, output, reason, time.perf_counter() - start)

        return with_retries(call, self.settings.retries, f"{type(self).__name__} {path}")

    def close(self) -> None:
        pass


class OllamaBackend(_HTTPBackend):
    """Ollama's native API."""

    def _options(self) -> dict:
        s = self.settings
        return {"temperature": s.temperature, "repeat_penalty": s.repeat_penalty, "num_ctx": s.num_ctx,
                "num_predict": s.max_new_tokens, "seed": s.seed, **s.extra}  # fmt: skip

    def generate(self, messages: list[dict]) -> Generation:
        s = self.settings
        if s.prefill:
            prompt = render_prompt(self.tokenizer(), messages, s)
            payload = {"model": s.model, "prompt": prompt, "raw": True, "stream": False, "options": self._options()}
            return self._post("/api/generate", payload, prompt, lambda r: (s.prefill + r["response"], r.get("done_reason", "")))
        payload = {"model": s.model, "messages": messages, "think": s.think, "stream": False, "options": self._options()}
        return self._post("/api/chat", payload, messages, lambda r: (r["message"]["content"], r.get("done_reason", "")))


class OpenAIBackend(_HTTPBackend):
    """Any OpenAI-compatible chat completions endpoint."""

    def generate(self, messages: list[dict]) -> Generation:
        s = self.settings
        payload = {"model": s.model, "messages": list(messages), "temperature": s.temperature, "max_tokens": s.max_new_tokens,
                   "seed": s.seed, "repetition_penalty": s.repeat_penalty,
                   "chat_template_kwargs": {"enable_thinking": s.think}, **s.extra}  # fmt: skip
        if s.prefill:
            payload["messages"].append({"role": "assistant", "content": s.prefill})
            payload.update(continue_final_message=True, add_generation_prompt=False)

        def parse(reply: dict) -> tuple[str, str]:
            choice = reply["choices"][0]
            return (s.prefill or "") + (choice["message"].get("content") or ""), choice.get("finish_reason") or ""

        return self._post("/v1/chat/completions", payload, payload["messages"], parse)


class LlamaCppServerBackend(_HTTPBackend):
    """llama.cpp's ``llama-server`` ``/completion`` endpoint, with a prompt rendered here."""

    def generate(self, messages: list[dict]) -> Generation:
        s = self.settings
        prompt = render_prompt(self.tokenizer(), messages, s)
        payload = {"prompt": prompt, "temperature": s.temperature, "repeat_penalty": s.repeat_penalty,
                   "n_predict": s.max_new_tokens, "n_ctx": s.num_ctx, "seed": s.seed, "cache_prompt": True, **s.extra}  # fmt: skip

        def parse(reply: dict) -> tuple[str, str]:
            reason = "length" if reply.get("stopped_limit") else "stop" if reply.get("stopped_eos") or reply.get("stopped_word") else ""
            return (s.prefill or "") + reply["content"], reply.get("stop_type", reason)

        return self._post("/completion", payload, prompt, parse)

