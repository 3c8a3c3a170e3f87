"""The transformers backend: generation in-process from an HF checkpoint, thinking off."""

from __future__ import annotations

import time

from coe.backends.base import Generation, GenerationSettings, chat_prompt

__all__ = ["TransformersBackend"]


class TransformersBackend:
    """``model.generate`` on a local checkpoint (``settings.model`` is its directory)."""

    def __init__(self, settings: GenerationSettings) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer or settings.model)
        self.model = AutoModelForCausalLM.from_pretrained(settings.model).eval()

    def generate(self, messages: list[dict]) -> Generation:
        import torch

        s = self.settings
        prompt = chat_prompt(self.tokenizer, messages, s)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not prompt.startswith(self.tokenizer.bos_token or "\0"))
        room = max(1, min(s.max_new_tokens, s.num_ctx - ids["input_ids"].shape[1]))
        torch.manual_seed(s.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=room, do_sample=s.temperature > 0,
                                      temperature=s.temperature or None, repetition_penalty=s.repeat_penalty,
                                      pad_token_id=self.tokenizer.pad_token_id)  # fmt: skip
        new = out[0, ids["input_ids"].shape[1] :]
        reason = "stop" if self.tokenizer.eos_token_id in new.tolist() else "length"
        text = (s.prefill or "") + self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(prompt, text, reason, time.perf_counter() - start)

    def close(self) -> None:
        self.model = None
