"""How much corpus is enough? The demo's mask-stability curve for each domain.

    python benchmarks/corpus_stability.py [--keep 8] [--threshold 0.95] [--start 512] [--plot stability.png]

Reuses (or builds) the embedded demo's corpora and parent from the stage
cache, then profiles each domain's training text (the largest split) with a
stability checkpoint at every doubling of tokens, and prints, per domain, the
min-over-layers Jaccard of each increment's mask with the previous one and the
token count from which every layer stays at the threshold, and the coverage
(share of utility mass kept) at each increment.
"""

from __future__ import annotations

import argparse

from coe.mask import MaskSettings
from coe.pipeline import repo_root
from coe.profile.runner import ProfileSettings, load_model, profile_model
from coe.profile.stability import StabilityTracker, plot_stability
from coe.stage import compose
from coe.stages import corpus, parent
from coe.stages.corpus import manifest
from coe.stages.store import ContentStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--start", type=int, default=512)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    cfg = compose(["+domain=coding"])
    store = ContentStore(repo_root() / cfg["paths"]["cache"])
    corpus_art = corpus.run(store, cfg)
    parent_art = parent.run(store, cfg, corpus_art)
    settings = ProfileSettings(batch_size=8, max_length=cfg["profile"]["max_length"])
    loaded = load_model(parent_art.path, settings, model_id="demo")
    mask_settings = MaskSettings(keep=args.keep)  # the demo's default whitelist; no CoT
    curves = {}
    for name, splits in sorted(manifest(corpus_art).items()):
        tracker = StabilityTracker(mask_settings, args.start, args.threshold)
        tracker.record(profile_model(loaded, splits["train"], settings, progress=False, checkpoint=tracker))
        curves[name] = tracker.points
        at = tracker.converged_at()
        row = "  ".join(f"{p.tokens}:{p.jaccard_min:.2f}" for p in tracker.points[1:])
        coverage = " ".join(f"{p.coverage:.3f}" for p in tracker.points)
        print(f"{name:<8} converged at {str(at) if at else 'never':>7} of {tracker.points[-1].tokens} tokens | {row}")
        print(f"{'':<8} coverage per increment: {coverage}")
    if args.plot:
        plot_stability(curves, args.threshold, args.plot)


if __name__ == "__main__":
    main()
