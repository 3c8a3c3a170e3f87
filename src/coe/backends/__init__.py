"""Generation backends (thinking off): transformers in-process, Ollama, OpenAI-compatible servers, llama.cpp's server.

Every backend has the same small contract (:class:`coe.backends.base.Backend`):
``generate(messages) -> Generation`` and ``close()``. Heavy client libraries are
imported inside the backend that needs them.
"""

from coe.backends.base import BACKENDS, Backend, Generation, GenerationSettings, make_backend

__all__ = ["BACKENDS", "Backend", "Generation", "GenerationSettings", "make_backend"]
