"""Parent stage: the model to specialise. The demo parent is trained here; a real one is read in place.

:func:`gguf` gives the parent's GGUF, if the run has one: a real parent's
``model.gguf``, or the demo parent exported (``model.gguf_export``) in a
stage of its own, so changing the export type never retrains the parent.
"""

from __future__ import annotations

from pathlib import Path

from coe.errors import ConfigError
from coe.families import layout_from_hf_config
from coe.profile.runner import read_hf_config
from coe.stages.corpus import manifest, texts
from coe.profile.runner import checkpoint_fingerprint
from coe.stages.store import Artifact, hash_json

__all__ = ["params", "run"]


def params(cfg: dict) -> dict:
    model = {k: v for k, v in cfg["model"].items() if k != "gguf_export"}  # the export is its own stage
    return {"model": model, "seed": cfg["seed"]}


def run(store, cfg: dict, corpus: Artifact, progress: bool = True) -> Artifact:
    """Train (or reuse) the demo parent, or validate a real one without loading its weights."""
    model = cfg["model"]
    if model["kind"] == "demo":
        from coe.demo.train import DemoSpec, train_demo_parent

        spec = DemoSpec(**model["train"], seed=cfg["seed"])

        def build(out: Path) -> None:  # reads the training text only when the parent is not cached
            train = {name: texts(splits["train"]) for name, splits in manifest(corpus).items() if "train" in splits}
            train_demo_parent(out, train, spec, progress=progress)

        return store.build("parent", params(cfg), [corpus], build)
    if not model.get("path") or not Path(model["path"]).is_dir():
        raise ConfigError(f"model.path must be a local Hugging Face checkpoint directory, got {model.get('path')!r}")
    config = read_hf_config(model["path"])
    layout_from_hf_config(config)  # refuses unknown families and dense models now, before any work
    if model.get("gguf") and not Path(model["gguf"]).is_file():
        raise ConfigError(f"model.gguf {model['gguf']} does not exist")
    return Artifact("parent", Path(model["path"]), hash_json({"fingerprint": checkpoint_fingerprint(model["path"])}), True)



def gguf(store, cfg: dict, parent: Artifact, progress: bool = True) -> Path | None:
    """The parent as a GGUF file: ``model.gguf``, or the demo parent exported to ``model.gguf_export``'s type; else None."""
    model = cfg["model"]
    if model.get("gguf"):
        return Path(model["gguf"])
    if not model.get("gguf_export"):
        return None
    from coe.export import export_gguf

    def build(out: Path) -> None:
        export_gguf(parent.path, out / "parent.gguf", model["gguf_export"], progress=progress)

    return store.build("gguf", {"type": model["gguf_export"]}, [parent], build).path / "parent.gguf"
