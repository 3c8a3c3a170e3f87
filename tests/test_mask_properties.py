"""Property tests of the mask method over random profiles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coe.mask import MaskSettings, build_mask, dumps_mask
from coe.mask.build import mean_rank
from coe.mask.scorers import score

from profiles import make_profile


@st.composite
def cases(draw):
    L = draw(st.integers(1, 3))
    E = draw(st.integers(2, 12))
    R = draw(st.integers(1, min(E, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # few distinct values, so ties occur often
    counts = rng.integers(0, draw(st.sampled_from([3, 30])), size=(L, E, R))
    weight_sum = counts * rng.choice([0.25, 0.5, 1.0], size=(L, E, R))
    cot_counts = rng.integers(0, 20, size=(L, E, R))
    cot = make_profile(cot_counts, cot_counts * rng.random((L, E, R)), n_tokens=max(1, int(cot_counts.sum())))
    domain = make_profile(counts, weight_sum, n_tokens=max(1, int(counts.sum())))
    mask_settings = MaskSettings(
        keep=draw(st.integers(R, E)),
        whitelist_max_mean_rank=draw(st.sampled_from([0.5, 1.0, 2.0])),
        whitelist_min_count=draw(st.integers(0, 30)),
        arbitrage_cap=draw(st.integers(0, 4)),
    )
    return domain, cot, mask_settings


@settings(max_examples=300, deadline=None)
@given(cases())
def test_mask_invariants(case):
    domain, cot, s = case
    mask = build_mask([domain], s, cot_profile=cot)
    counts = domain.counts
    white = (counts.sum(-1) >= s.whitelist_min_count) & (mean_rank(counts) < s.whitelist_max_mean_rank)
    for slot, block in enumerate(domain.meta.moe_layers):
        kept = mask.layers[block]
        assert len(kept) == s.keep and kept == sorted(set(kept))
        if white[slot].sum() <= s.keep:
            assert set(np.flatnonzero(white[slot])) <= set(kept)
        arbitrage = [x for x in mask.swaps if x.layer == block and x.pass_ == "arbitrage"]
        assert len(arbitrage) <= s.arbitrage_cap
        assert all(x.why["added_cot_utility"] > x.why["removed_cot_utility"] for x in arbitrage)
    assert dumps_mask(mask) == dumps_mask(build_mask([domain], s, cot_profile=cot))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_no_whitelist_no_arbitrage_is_plain_top_k(case):
    domain, cot, s = case
    plain = MaskSettings(keep=s.keep, whitelist_min_count=10**9, arbitrage_cap=0)
    mask = build_mask([domain], plain, cot_profile=cot)
    util = score("utility", domain)
    for slot, block in enumerate(domain.meta.moe_layers):
        ranked = sorted(range(util.shape[1]), key=lambda e: (-util[slot, e], e))
        assert mask.layers[block] == sorted(ranked[: s.keep])
    assert mask.swaps == []
