"""The three-pass mask method against hand-computed cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coe.errors import ConfigError
from coe.mask import MaskSettings, build_mask, dumps_mask, load_mask, save_mask
from coe.mask.scorers import score

from profiles import make_profile

NO_WHITELIST = {"whitelist_min_count": 10**9, "arbitrage_cap": 0}


def test_utility_formula_by_hand():
    profile = make_profile([[3, 1], [0, 0]], [[1.5, 0.2], [0.0, 0.0]], n_tokens=10)
    # e0: 0.3 * (1.5 / 3) + 0.1 * (0.2 / 1) = 0.17; e1 never picked: 0
    np.testing.assert_allclose(score("utility", profile), [[0.17, 0.0]])
    np.testing.assert_allclose(score("frequency", profile), [[0.4, 0.0]])
    np.testing.assert_allclose(score("rank_weighted", profile), [[(3 + 1 / 2) / 10, 0.0]])


def test_pass1_top_k_with_ties_to_lower_id():
    profile = make_profile([[4], [2], [2], [0]], [[2.0], [1.0], [1.0], [0.0]], n_tokens=10)
    mask = build_mask([profile], MaskSettings(keep=2, **NO_WHITELIST))
    assert mask.layers == {0: [0, 1]}  # e1 and e2 tie at 0.1; the lower id wins
    assert mask.swaps == []


def test_pass2_whitelist_displaces_lowest_utility():
    counts = [[0, 40], [0, 30], [0, 25], [12, 0], [5, 0], [15, 5]]
    weights = [[0, 16], [0, 12], [0, 10], [0.6, 0], [1, 0], [3, 0.5]]
    profile = make_profile(counts, weights, n_tokens=100)
    settings = MaskSettings(keep=3, whitelist_max_mean_rank=0.5, whitelist_min_count=10, arbitrage_cap=0)
    mask = build_mask([profile], settings)
    # pass 1 keeps e0 (.16), e1 (.12), e2 (.10); whitelisted: e5 (rank .25, 20 picks), e3 (rank 0, 12 picks);
    # e4 has rank 0 but only 5 picks. e5 (util .035) goes in first, displacing e2; then e3 displaces e1.
    assert mask.layers == {0: [0, 3, 5]}
    assert [(s.pass_, s.added, s.removed) for s in mask.swaps] == [("whitelist", 5, 2), ("whitelist", 3, 1)]
    assert mask.swaps[0].why == pytest.approx(
        {"added_utility": 0.035, "added_mean_rank": 0.25, "added_picks": 20, "removed_utility": 0.10}
    )


def test_pass2_whitelist_overflow_keeps_highest_utility_and_says_so():
    counts = [[0, 50], [20, 0], [30, 0], [15, 0], [0, 0]]
    weights = [[0, 30], [8, 0], [9, 0], [3, 0], [0, 0]]
    profile = make_profile(counts, weights, n_tokens=100)
    settings = MaskSettings(keep=2, whitelist_max_mean_rank=0.5, whitelist_min_count=10, arbitrage_cap=0)
    mask = build_mask([profile], settings)
    assert mask.layers == {0: [1, 2]}  # e2 (.09) and e1 (.08) of the three whitelisted; e0 (.3) displaced
    assert [(s.added, s.removed) for s in mask.swaps] == [(1, 0)]
    assert mask.notes == ["layer 0: 3 whitelisted experts exceed keep=2; kept the 2 of highest utility"]


def _arbitrage_case(cot_e0: float):
    domain = make_profile([[1]] * 6, [[6], [5], [4], [3], [2], [1]], n_tokens=10)
    cot = make_profile([[1]] * 6, [[cot_e0], [0.1], [0.05], [0.5], [0.4], [0.3]], n_tokens=1)
    return domain, cot


@pytest.mark.parametrize(("cap", "cot_e0", "expected"), [
    (2, 0.0, [0, 3, 4]),  # stops at the cap
    (3, 0.0, [3, 4, 5]),  # e5 (.3) beats e0 (.0)
    (3, 0.35, [0, 3, 4]),  # e5 (.3) does not beat e0 (.35): the pass stops
    (0, 0.0, [0, 1, 2]),  # cap 0 disables pass 3
])  # fmt: skip
def test_pass3_arbitrage(cap, cot_e0, expected):
    domain, cot = _arbitrage_case(cot_e0)
    mask = build_mask([domain], MaskSettings(keep=3, whitelist_min_count=10**9, arbitrage_cap=cap), cot_profile=cot)
    assert mask.layers == {0: expected}
    arbitrage = [(s.added, s.removed) for s in mask.swaps]
    assert arbitrage == [(3, 2), (4, 1), (5, 0)][: len(set(expected) - {0, 1, 2})]
    if arbitrage:
        assert mask.swaps[0].why == pytest.approx(
            {"added_cot_utility": 0.5, "removed_cot_utility": 0.05, "added_utility": 0.3, "removed_utility": 0.4}
        )


def test_pass3_never_displaces_whitelisted_experts():
    # Domain: e0 is whitelisted but has the lowest utility of the kept; the CoT profile rates e3 highly.
    domain = make_profile([[12, 0], [0, 40], [0, 30], [0, 1]], [[0.5, 0], [0, 20], [0, 15], [0, 0.1]], n_tokens=100)
    cot = make_profile([[0, 1], [0, 1], [0, 1], [0, 1]], [[0, 0.01], [0, 0.2], [0, 0.02], [0, 0.9]], n_tokens=1)
    settings = MaskSettings(keep=3, whitelist_max_mean_rank=0.5, whitelist_min_count=10, arbitrage_cap=3)
    mask = build_mask([domain], settings, cot_profile=cot)
    # pass 1: e1, e2, e0 (.005 > e3's .001); e0 is protected, so e3 displaces e2 (cot .02 < .9)
    assert mask.layers == {0: [0, 1, 3]}
    assert [(s.pass_, s.added, s.removed) for s in mask.swaps] == [("arbitrage", 3, 2)]


def test_multi_domain_weights_combine_normalised_utilities():
    a = make_profile([[1]] * 4, [[8], [6], [1], [1]], n_tokens=10)  # normalised: .5 .375 .0625 .0625
    b = make_profile([[1]] * 4, [[1], [1], [30], [40]], n_tokens=1000)  # normalised: 1/72 1/72 30/72 40/72
    settings = MaskSettings(keep=2, **NO_WHITELIST)
    assert build_mask([a, b], settings, weights=[1, 0]).layers == {0: [0, 1]}
    assert build_mask([a, b], settings, weights=[0, 1]).layers == {0: [2, 3]}
    # equal weights: e0 .5139, e1 .3889, e2 .4792, e3 .6181
    assert build_mask([a, b], settings).layers == {0: [0, 3]}
    assert build_mask([a, b], settings).params["weights"] == [1.0, 1.0]


def test_same_inputs_same_bytes_and_round_trip(tmp_path):
    domain, cot = _arbitrage_case(0.0)
    settings = MaskSettings(keep=3, whitelist_min_count=10**9)
    first = build_mask([domain], settings, cot_profile=cot, sources={"profile_sha256": "ab"})
    second = build_mask([domain], settings, cot_profile=cot, sources={"profile_sha256": "ab"})
    assert dumps_mask(first) == dumps_mask(second)
    save_mask(first, tmp_path / "mask.json")
    back = load_mask(tmp_path / "mask.json")
    assert dumps_mask(back) == dumps_mask(first)
    data = first.to_json()
    assert list(data) == ["format", "num_experts", "keep", "layers", "swaps", "params", "sources"]
    assert data["params"] == {"keep": 3, "scorer": "utility", "whitelist": {"max_mean_rank": 2.0, "min_count": 10**9},
                              "arbitrage": {"cap": 3}, "seed": 0, "weights": [1.0], "cot": True}  # fmt: skip


def test_random_scorer_is_seeded():
    profile = make_profile(np.ones((2, 16, 2)), np.ones((2, 16, 2)), n_tokens=16)
    masks = [build_mask([profile], MaskSettings(keep=4, scorer="random", seed=s, **NO_WHITELIST)) for s in (1, 1, 2)]
    assert masks[0].layers == masks[1].layers != masks[2].layers


def test_reap_scorer_uses_gate_out_norm():
    profile = make_profile([[2], [4], [1]], [[1], [1], [1]], n_tokens=7, gate_out_norm_sum=np.array([[1.0, 1.0, 0.9]]))
    np.testing.assert_allclose(score("reap", profile), [[0.5, 0.25, 0.9]])
    plain = make_profile([[2], [4], [1]], [[1], [1], [1]], n_tokens=7)
    with pytest.raises(ConfigError, match="coe profile --reap"):
        score("reap", plain)


@pytest.mark.parametrize(("keep", "message"), [(1, "below the model's top_k=2"), (9, "exceeds the model's 8")])
def test_keep_out_of_range(keep, message):
    profile = make_profile(np.ones((1, 8, 2)), np.ones((1, 8, 2)), n_tokens=4)
    with pytest.raises(ConfigError, match=message):
        build_mask([profile], MaskSettings(keep=keep))


def test_incompatible_and_empty_profiles():
    a = make_profile(np.ones((1, 8, 2)), np.ones((1, 8, 2)), n_tokens=4)
    wider = make_profile(np.ones((1, 16, 2)), np.ones((1, 16, 2)), n_tokens=4)
    with pytest.raises(ConfigError, match="num_experts"):
        build_mask([a], MaskSettings(keep=4), cot_profile=wider)
    other_ckpt = dataclasses.replace(a, meta=dataclasses.replace(a.meta, revision="x" * 64))
    mine = dataclasses.replace(a, meta=dataclasses.replace(a.meta, revision="y" * 64))
    with pytest.raises(ConfigError, match="another checkpoint"):
        build_mask([mine, other_ckpt], MaskSettings(keep=4))
    empty = make_profile(np.zeros((1, 8, 2)), np.zeros((1, 8, 2)), n_tokens=0)
    with pytest.raises(ConfigError, match="empty"):
        build_mask([empty], MaskSettings(keep=4))


def test_unknown_scorer_suggests():
    a = make_profile(np.ones((1, 8, 2)), np.ones((1, 8, 2)), n_tokens=4)
    with pytest.raises(ConfigError, match="Did you mean 'frequency'"):
        build_mask([a], MaskSettings(keep=4, scorer="frequncy"))


def test_sources_hash_profile_content_not_file_bytes(tmp_path):
    from coe.mask import mask_sources
    from coe.profile import load_profile, save_profile

    domain, cot = _arbitrage_case(0.0)
    save_profile(domain, tmp_path / "a.safetensors")
    back = load_profile(tmp_path / "a.safetensors")
    assert back.content_sha256() == domain.content_sha256()
    assert mask_sources([domain], cot) == {"profile_sha256": domain.content_sha256(), "cot_profile_sha256": cot.content_sha256()}
    changed = make_profile([[1]] * 6, [[6], [5], [4], [3], [2], [1.5]], n_tokens=10)
    assert changed.content_sha256() != domain.content_sha256()
