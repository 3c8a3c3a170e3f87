"""The pipeline's stages: corpus -> parent -> profile -> mask -> surgery -> evaluate.

Each stage module has ``params(cfg)`` (the config it depends on, which keys its
cache entry) and ``run(store, cfg, *upstream)`` (which returns an
:class:`~coe.stages.store.Artifact`). ``cfg`` is the composed config as a
plain dict; Hydra and MLflow stay in the front doors.
"""

STAGES = ("corpus", "parent", "profile", "mask", "surgery", "evaluate")

__all__ = ["STAGES"]
