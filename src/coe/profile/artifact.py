"""The RouterProfile artifact (``profile.safetensors``, format ``coe.profile/1``).

Tensors:
    counts      int64   [L, E, R]  picks of expert e at rank r in MoE layer l
    weight_sum  float64 [L, E, R]  sum of the router weights behind those picks
    n_tokens    int64   []         tokens profiled (padding and BOS excluded)
    extras      any name, e.g. ``gate_out_norm_sum`` float64 [L, E]
Header metadata (strings): see :class:`ProfileMeta`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from coe.errors import ConfigError, FormatError
from coe.io import write_bytes_atomic

__all__ = ["FORMAT", "ProfileMeta", "RouterProfile", "save_profile", "load_profile", "merge_profiles"]

FORMAT = "coe.profile/1"
_CORE = ("counts", "weight_sum", "n_tokens")


@dataclass(frozen=True)
class ProfileMeta:
    """Header metadata of a RouterProfile.

    Attributes:
        model_id: path or hub id of the profiled model.
        revision: model revision (commit or file sha256), "" if unknown.
        family: family adapter name.
        moe_layers: block indices of the MoE layers, in profile order.
        num_experts / top_k: router shape.
        weight_semantics: which router weight ``weight_sum`` sums.
        corpus_sha256: sha256 of the corpus file(s), "+"-joined after a merge.
        backend: what ran the model ("transformers", "llama.cpp").
        stability: the mask-stability curve as JSON (``coe profile --keep``), "" if none.
        quantization: the weights' type as profiled (a GGUF's file type, e.g. "MOSTLY_Q8_0"), "" if unknown.
    """

    model_id: str
    family: str
    moe_layers: tuple[int, ...]
    num_experts: int
    top_k: int
    weight_semantics: str
    corpus_sha256: str
    backend: str
    revision: str = ""
    stability: str = ""
    quantization: str = ""

    def to_header(self) -> dict[str, str]:
        """Flatten to the string-only safetensors header."""
        header = {k: str(v) for k, v in asdict(self).items()}
        header["moe_layers"] = json.dumps(list(self.moe_layers))
        if not self.quantization:  # absent rather than empty: profiles from before the field keep their hash
            del header["quantization"]
        header["format"] = FORMAT
        return header

    @classmethod
    def from_header(cls, header: dict[str, str]) -> ProfileMeta:
        """Parse the safetensors header written by :meth:`to_header`."""
        try:
            return cls(
                model_id=header["model_id"],
                revision=header.get("revision", ""),
                family=header["family"],
                moe_layers=tuple(int(b) for b in json.loads(header["moe_layers"])),
                num_experts=int(header["num_experts"]),
                top_k=int(header["top_k"]),
                weight_semantics=header["weight_semantics"],
                corpus_sha256=header["corpus_sha256"],
                backend=header["backend"],
                stability=header.get("stability", ""),
                quantization=header.get("quantization", ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise FormatError(f"profile header is incomplete or malformed ({exc!r})") from exc


@dataclass
class RouterProfile:
    """Router statistics of one model over one corpus (see module docstring)."""

    counts: np.ndarray  # [L, E, R] int64
    weight_sum: np.ndarray  # [L, E, R] float64
    n_tokens: int
    meta: ProfileMeta
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = (len(self.meta.moe_layers), self.meta.num_experts, self.meta.top_k)
        if self.counts.shape != expected or self.weight_sum.shape != expected:
            raise FormatError(
                f"profile tensors have shapes {self.counts.shape} and {self.weight_sum.shape}; "
                f"the metadata says [layers, experts, top_k] = {list(expected)}"
            )
        self.counts = self.counts.astype(np.int64, copy=False)
        self.weight_sum = self.weight_sum.astype(np.float64, copy=False)
        self.n_tokens = int(self.n_tokens)

    @property
    def shape(self) -> tuple[int, int, int]:
        """[layers, experts, ranks]."""
        return self.counts.shape  # type: ignore[return-value]

    def content_sha256(self) -> str:
        """sha256 of the profile's content: metadata and tensors in a canonical order.

        Use this, not the file's sha256, to identify a profile: safetensors
        writes header metadata in no fixed order, so equal profiles can differ
        in file bytes.
        """
        digest = hashlib.sha256(json.dumps(self.meta.to_header(), sort_keys=True).encode())
        tensors = {"counts": self.counts, "weight_sum": self.weight_sum, **self.extras}
        digest.update(str(self.n_tokens).encode())
        for name in sorted(tensors):
            array = np.ascontiguousarray(tensors[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()


def save_profile(profile: RouterProfile, path: str | os.PathLike[str]) -> None:
    """Write ``profile`` to ``path`` atomically as safetensors."""
    tensors = {
        "counts": profile.counts,
        "weight_sum": profile.weight_sum,
        "n_tokens": np.asarray(profile.n_tokens, dtype=np.int64),
        **profile.extras,
    }
    write_bytes_atomic(path, save(tensors, metadata=profile.meta.to_header()))


def load_profile(path: str | os.PathLike[str]) -> RouterProfile:
    """Read a RouterProfile written by :func:`save_profile`.

    Raises:
        FormatError: the file is missing, not safetensors, or not a coe profile.
    """
    if not os.path.isfile(path):
        raise FormatError(f"profile {path} does not exist; create one with `coe profile`")
    try:
        with safe_open(path, framework="numpy") as fh:
            header = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise FormatError(f"{path} is not a readable safetensors file ({exc})") from exc
    if header.get("format") != FORMAT:
        raise FormatError(f"{path} is not a coe profile: format is {header.get('format')!r}, expected {FORMAT!r}")
    missing = [name for name in _CORE if name not in tensors]
    if missing:
        raise FormatError(f"profile {path} lacks tensors {missing}")
    extras = {k: v for k, v in tensors.items() if k not in _CORE}
    return RouterProfile(
        counts=tensors["counts"],
        weight_sum=tensors["weight_sum"],
        n_tokens=int(tensors["n_tokens"]),
        meta=ProfileMeta.from_header(header),
        extras=extras,
    )


def merge_profiles(profiles: list[RouterProfile]) -> RouterProfile:
    """Sum profiles of the same model (e.g. corpus shards profiled apart).

    Raises:
        ConfigError: the profiles are of different models, layouts or semantics.
    """
    if not profiles:
        raise ConfigError("nothing to merge: give at least one profile")
    first = profiles[0]
    for other in profiles[1:]:
        _check_mergeable(first, other)
    corpora = "+".join(dict.fromkeys(h for p in profiles for h in p.meta.corpus_sha256.split("+")))
    return RouterProfile(
        counts=sum((p.counts for p in profiles[1:]), first.counts.copy()),
        weight_sum=sum((p.weight_sum for p in profiles[1:]), first.weight_sum.copy()),
        n_tokens=sum(p.n_tokens for p in profiles),
        meta=replace(first.meta, corpus_sha256=corpora, stability=""),  # curves of shards do not add up
        extras={k: sum((p.extras[k] for p in profiles[1:]), v.copy()) for k, v in first.extras.items()},
    )


def _check_mergeable(a: RouterProfile, b: RouterProfile) -> None:
    keys = ("model_id", "revision", "family", "moe_layers", "num_experts", "top_k", "weight_semantics")
    for key in keys:
        if getattr(a.meta, key) != getattr(b.meta, key):
            raise ConfigError(
                f"cannot merge profiles with different {key}: {getattr(a.meta, key)!r} vs {getattr(b.meta, key)!r}"
            )
    if set(a.extras) != set(b.extras):
        raise ConfigError(f"cannot merge profiles with different extra statistics: {sorted(a.extras)} vs {sorted(b.extras)}")
