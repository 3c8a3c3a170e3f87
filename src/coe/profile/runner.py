"""Profile a Hugging Face MoE model's routers over a corpus (the transformers backend)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from coe.corpus import corpus_digest, iter_batches, iter_chunks, iter_segments
from coe.errors import ConfigError, FormatError
from coe.families import MoEFamily, MoELayout, layout_from_hf_config
from coe.profile.artifact import ProfileMeta, RouterProfile
from coe.profile.recorder import WEIGHT_SEMANTICS, RouterRecorder, find_moe_layers

__all__ = ["ProfileSettings", "LoadedModel", "load_model", "read_hf_config", "profile_model", "checkpoint_fingerprint"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ProfileSettings:
    """How to run the model over the corpus.

    Attributes:
        batch_size: chunks per forward pass.
        max_length: tokens per chunk, BOS included.
        device: torch device string ("cpu", "cuda", "cuda:1", "mps").
        dtype: model dtype name: float32, bfloat16 or float16.
        reap: also record ``gate_out_norm_sum`` for the REAP scorer (slower).
    """

    batch_size: int = 8
    max_length: int = 512
    device: str = "cpu"
    dtype: str = "float32"
    reap: bool = False

    def validate(self) -> None:
        """Raise ConfigError on a setting no run could use."""
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be >= 2 (BOS plus one token), got {self.max_length}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")


@dataclass
class LoadedModel:
    """A model ready to profile, with what coe knows about its MoE layout."""

    model: torch.nn.Module
    tokenizer: object
    family: MoEFamily
    layout: MoELayout
    model_id: str
    revision: str


def read_hf_config(model_dir: str | os.PathLike[str]) -> dict:
    """Read ``config.json`` from an HF model directory.

    Raises:
        FormatError: the directory or its config.json is missing or not JSON.
    """
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        raise FormatError(f"{model_dir} is not a Hugging Face model directory: {config_path} is missing")
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(f"{config_path} is not valid JSON ({exc})") from exc


def checkpoint_fingerprint(model_dir: str | os.PathLike[str]) -> str:
    """Cheap revision id: sha256 of config.json plus weight file names and sizes.

    Hashing every weight byte of a 50 GB checkpoint would take minutes; a
    re-saved or edited checkpoint still changes at least one of these.
    """
    model_dir = Path(model_dir)
    digest = hashlib.sha256((model_dir / "config.json").read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def load_model(model_dir: str | os.PathLike[str], settings: ProfileSettings, model_id: str | None = None) -> LoadedModel:
    """Validate an HF MoE checkpoint's config, then load model and tokenizer.

    ``model_id`` names the model in profile metadata (default: the directory as
    given); the pipeline passes the config's model name, so that profiles do not
    depend on where a checkpoint happens to be stored.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings.validate()
    family, layout = layout_from_hf_config(read_hf_config(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=_DTYPES[settings.dtype])
    model.to(settings.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return LoadedModel(model, tokenizer, family, layout, model_id or str(model_dir), checkpoint_fingerprint(model_dir))


Checkpoint = Callable[[int, Callable[[], RouterProfile]], bool]


def profile_model(
    loaded: LoadedModel,
    corpus: Sequence[str | os.PathLike[str]],
    settings: ProfileSettings,
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
) -> RouterProfile:
    """Run the model over ``corpus`` and return its RouterProfile.

    Memory does not grow with corpus size: files are streamed, chunked and
    batched lazily, and statistics accumulate in fixed-size device tensors.

    ``checkpoint(tokens_so_far, snapshot)`` is called after every batch;
    ``snapshot()`` returns the profile so far (a host copy, so call it rarely).
    Returning True stops profiling early (``coe profile --until-stable``).
    """
    settings.validate()
    for path in corpus:
        if not Path(path).is_file():
            raise FormatError(f"corpus file {path} does not exist")
    tokenizer = loaded.tokenizer
    bos_id = tokenizer.bos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    body = settings.max_length - (0 if bos_id is None else 1)
    encode = lambda text: tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]  # noqa: E731
    batches = iter_batches(iter_chunks(iter_segments(corpus), encode, body), settings.batch_size, pad_id, bos_id)

    device = torch.device(settings.device)
    layers = find_moe_layers(loaded.model, loaded.family, loaded.layout)
    recorder = RouterRecorder(layers, loaded.family, loaded.layout, device, gate_out_norm=settings.reap)
    tokens = 0
    digest = corpus_digest(corpus)  # once: stability checkpoints snapshot the profile many times
    with recorder, torch.inference_mode(), tqdm(desc="profiling", unit="tok", unit_scale=True, disable=not progress) as bar:
        for batch in batches:
            recorder.counting(torch.from_numpy(batch.count_mask).to(device))
            loaded.model(
                input_ids=torch.from_numpy(batch.input_ids).to(device),
                attention_mask=torch.from_numpy(batch.attention_mask).to(device),
                use_cache=False,
                logits_to_keep=1,  # the profile needs no logits; skip the [B, T, vocab] head
            )
            tokens += int(batch.count_mask.sum())
            bar.update(int(batch.count_mask.sum()))
            if checkpoint is not None and checkpoint(tokens, lambda: _snapshot(recorder, loaded, digest)):
                break
    return _snapshot(recorder, loaded, digest)


def _snapshot(recorder: RouterRecorder, loaded: LoadedModel, corpus_sha256: str) -> RouterProfile:
    counts, weight_sum, n_tokens, extras = recorder.result()
    meta = ProfileMeta(
        model_id=loaded.model_id,
        revision=loaded.revision,
        family=loaded.family.name,
        moe_layers=loaded.layout.moe_layers,
        num_experts=loaded.layout.num_experts,
        top_k=loaded.layout.top_k,
        weight_semantics=WEIGHT_SEMANTICS,
        corpus_sha256=corpus_sha256,
        backend="transformers",
    )
    return RouterProfile(counts=counts, weight_sum=weight_sum, n_tokens=n_tokens, meta=meta, extras=extras)
