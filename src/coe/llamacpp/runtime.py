"""llama.cpp in-process, through llama-cpp-python's low-level bindings.

:class:`GGUFRuntime` owns one model and one context and decodes each token
sequence from an empty KV cache. An optional graph callback (llama.cpp's
``cb_eval``) sees the named tensors of every computed graph; :func:`read_tensor`
copies one to numpy through ``ggml_backend_tensor_get``, so it works for
tensors on any backend, strided views included.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from coe.errors import ConfigError, FormatError

__all__ = ["GGUFRuntime", "GGMLTensor", "read_tensor", "require_llama_cpp"]

log = logging.getLogger(__name__)

# A graph callback: (tensor name, tensor pointer) -> None; asked only about names for which ``want(name)`` is true.
GraphCallback = Callable[[str, "ctypes._Pointer[GGMLTensor]"], None]


def require_llama_cpp():
    """The ``llama_cpp`` module, or a ConfigError that says how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError("llama.cpp support needs llama-cpp-python: pip install 'coe[llamacpp]'") from exc
    return llama_cpp


class GGMLTensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h: GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


_NUMPY = {0: np.float32, 1: np.float16, 26: np.int32}  # GGML_TYPE_F32, F16, I32
_tensor_get = None


def _ggml_tensor_get():
    global _tensor_get
    if _tensor_get is None:
        from llama_cpp._ggml import libggml

        _tensor_get = libggml.ggml_backend_tensor_get
        _tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        _tensor_get.restype = None
    return _tensor_get


def read_tensor(pointer: ctypes.c_void_p) -> np.ndarray:
    """A computed F32/F16/I32 graph tensor as numpy [ne3, ne2, ne1, ne0], honouring its strides (views included)."""
    t = ctypes.cast(pointer, ctypes.POINTER(GGMLTensor)).contents
    if t.type not in _NUMPY:
        raise FormatError(f"graph tensor {t.name.decode()} has ggml type {t.type}; expected F32, F16 or I32")
    dtype = np.dtype(_NUMPY[t.type])
    shape, strides = tuple(reversed(t.ne)), tuple(reversed(t.nb))
    size = sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + dtype.itemsize if all(shape) else 0
    buffer = np.empty(size, dtype=np.uint8)
    if size:
        _ggml_tensor_get()(pointer, buffer.ctypes.data, 0, size)
    return np.ndarray(shape=shape, dtype=dtype, buffer=buffer, strides=strides).copy()


_log_callback = None
_WARN, _CONT = 3, 5  # ggml_log_level: DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line)


def _route_logs(llama_cpp) -> None:
    """Send llama.cpp's warnings and errors to Python logging and drop the rest (it prints every tensor otherwise)."""
    global _log_callback
    if _log_callback is None:

        def forward(level: int, text: bytes, _data) -> None:
            if level >= _WARN and level != _CONT:
                log.warning("llama.cpp: %s", text.decode(errors="replace").rstrip())

        _log_callback = llama_cpp.llama_log_callback(forward)
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


class GGUFRuntime:
    """One llama.cpp model and context; a context manager that frees both.

    Args:
        path: the GGUF file.
        n_ctx: the longest sequence to decode (BOS included).
        n_ubatch: tokens per compute graph; longer sequences are split into micro-batches.
        n_threads: CPU threads (default: all cores).
        n_gpu_layers: layers to offload to a GPU build's device (0: CPU only).
        callback: ``(name, tensor)`` for each computed graph tensor whose name ``want`` accepts.
        want: the graph tensor names ``callback`` is asked about.
        f32_cache: F32 KV cache and no flash attention (exact comparisons) rather than llama.cpp's defaults.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        n_ctx: int = 512,
        n_ubatch: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        callback: GraphCallback | None = None,
        want: Callable[[str], bool] | None = None,
        f32_cache: bool = False,
    ) -> None:
        self.llama = llama = require_llama_cpp()
        path = Path(path)
        if not path.is_file():
            raise FormatError(f"{path} does not exist")
        _route_logs(llama)
        llama.llama_backend_init()
        model_params = llama.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        self.model = llama.llama_model_load_from_file(str(path).encode(), model_params)
        if not self.model:
            raise FormatError(f"llama.cpp could not load {path} (not a GGUF it supports?)")
        self.vocab = llama.llama_model_get_vocab(self.model)
        params = llama.llama_context_default_params()
        params.n_ctx = params.n_batch = n_ctx
        params.n_ubatch = min(n_ubatch or n_ctx, n_ctx)
        params.n_seq_max = 1
        params.n_threads = params.n_threads_batch = n_threads or os.cpu_count() or 1
        if f32_cache:
            params.type_k = params.type_v = llama.GGML_TYPE_F32
            params.flash_attn_type = llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._callback = None
        if callback is not None:
            self._callback = llama.ggml_backend_sched_eval_callback(self._eval_callback(callback, want or (lambda n: True)))
            params.cb_eval = self._callback
        self.ctx = llama.llama_init_from_model(self.model, params)
        if not self.ctx:
            llama.llama_model_free(self.model)
            raise FormatError(f"llama.cpp could not create a context for {path}")
        self.n_ctx = n_ctx
        self.batch = llama.llama_batch_init(n_ctx, 0, 1)

    @staticmethod
    def _eval_callback(callback: GraphCallback, want: Callable[[str], bool]):
        def on_tensor(tensor, ask, _user_data) -> bool:
            name = ctypes.cast(tensor, ctypes.POINTER(GGMLTensor)).contents.name.decode()
            if ask:
                return want(name)
            callback(name, tensor)
            return True  # keep computing

        return on_tensor

    def __enter__(self) -> GGUFRuntime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the batch, context and model (idempotent)."""
        if getattr(self, "ctx", None):
            self.llama.llama_batch_free(self.batch)
            self.llama.llama_free(self.ctx)
            self.llama.llama_model_free(self.model)
            self.ctx = None

    @property
    def bos_id(self) -> int | None:
        bos = self.llama.llama_vocab_bos(self.vocab)
        return None if bos < 0 else bos

    @property
    def n_vocab(self) -> int:
        return self.llama.llama_vocab_n_tokens(self.vocab)

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp reads it, or None."""
        buf = ctypes.create_string_buffer(4096)
        n = self.llama.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return None if n < 0 else buf.value.decode()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with llama.cpp's tokenizer: no BOS, special tokens as plain text."""
        data = text.encode()
        capacity = len(data) + 8
        tokens = (self.llama.llama_token * capacity)()
        n = self.llama.llama_tokenize(self.vocab, data, len(data), tokens, capacity, False, False)
        if n < 0:  # cannot happen with a byte per token at most, but llama.cpp reports it so
            raise FormatError(f"llama.cpp needs {-n} tokens for a text of {len(data)} bytes")
        return list(tokens[:n])

    def decode(self, tokens: Sequence[int], logits: bool = False) -> np.ndarray | None:
        """Run ``tokens`` as one sequence from an empty cache; its logits [T, vocab] if asked."""
        if not 0 < len(tokens) <= self.n_ctx:
            raise ConfigError(f"a sequence must have 1 to {self.n_ctx} tokens, got {len(tokens)}")
        llama, batch = self.llama, self.batch
        llama.llama_memory_clear(llama.llama_get_memory(self.ctx), True)
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = logits or i == len(tokens) - 1
        status = llama.llama_decode(self.ctx, batch)
        if status != 0:
            raise FormatError(f"llama_decode failed with status {status}")
        if not logits:
            return None
        out = llama.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(out, shape=(len(tokens), self.n_vocab)).copy()
