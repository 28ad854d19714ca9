"""The race statistics against values computed by hand (``optarena.experiments.stats``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optarena.experiments.stats import (
    geometric_mean_interval,
    holm,
    log_t_band,
    paired_ratio_test,
    tied_ranks,
    time_to_reach,
)

T_975_DF1 = 12.706205  # Student-t 97.5% quantiles, from a table
T_975_DF2 = 4.302653


def test_geometric_mean_interval_is_a_t_interval_of_the_logs():
    # logs 0, 2 ln 2, 4 ln 2: mean 2 ln 2 (geometric mean 4), standard deviation 2 ln 2
    interval = geometric_mean_interval([1.0, 4.0, 16.0])
    factor = math.exp(T_975_DF2 * 2 * math.log(2) / math.sqrt(3))  # 31.30
    assert interval.center == pytest.approx(4.0)
    assert interval.low == pytest.approx(4.0 / factor, rel=1e-6)
    assert interval.high == pytest.approx(4.0 * factor, rel=1e-6)
    assert interval.n == 3
    # not the arithmetic mean (7) nor a symmetric interval around it
    assert interval.high / interval.center == pytest.approx(interval.center / interval.low)


def test_invalid_values_are_left_out_and_one_value_has_no_interval():
    interval = geometric_mean_interval([2.0, 8.0, 0.0, math.nan, -1.0])
    assert (interval.center, interval.n) == (pytest.approx(4.0), 2)
    assert interval.high == pytest.approx(4.0 * 2 ** T_975_DF1, rel=1e-6)  # sem of the logs: ln 2
    single = geometric_mean_interval([5.0])
    assert single.center == pytest.approx(5.0) and math.isnan(single.low)
    assert math.isnan(geometric_mean_interval([]).center)


def test_log_band_runs_along_an_axis_and_equal_values_give_a_zero_width_interval():
    band = log_t_band(np.array([[1.0, 3.0, 2.0], [4.0, np.nan, 2.0]]))
    assert band.center == pytest.approx([2.0, 3.0, 2.0])
    assert list(band.n) == [2, 1, 2]
    assert math.isnan(band.low[1])
    assert (band.low[2], band.high[2]) == (pytest.approx(2.0), pytest.approx(2.0))


def _ratios(logs: list[float]) -> tuple[dict, dict]:
    """An agent whose log ratio to a baseline of 1 is ``logs[i]`` on workload w, seed i."""
    return ({("w", i): math.exp(d) for i, d in enumerate(logs)},
            {("w", i): 1.0 for i in range(len(logs))})


def test_wilcoxon_exact_p_values():
    # five pairs, all better: P(W+ = 15) = 1/32 on each side
    test = paired_ratio_test(*_ratios([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert (test.p_value, test.statistic, test.method, test.pairs) == \
        (pytest.approx(2 / 32), 0.0, "exact", 5)
    # six pairs, the smallest one worse: W- = 1, P(W- <= 1) = 2/64 on each side
    test = paired_ratio_test(*_ratios([-0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    assert (test.p_value, test.statistic) == (pytest.approx(4 / 64), 1.0)
    assert test.ratio.center == pytest.approx(math.exp(1.9 / 6))  # geometric mean of the ratios


def test_wilcoxon_with_ties_uses_the_exact_permutation_distribution():
    # |d| = 0.3, 0.3, 2, 3, 4: ranks 1.5, 1.5, 3, 4, 5; the one negative has rank 1.5, so
    # W- = 1.5. Of the 32 sign assignments, 3 have W- <= 1.5 (none negative, or either 1.5
    # alone): p = 2 * 3/32. exp and log round-trip 0.3 and -0.3 to magnitudes 1 ulp apart:
    # still a tie (untied, W- would be 1 and p 4/32).
    test = paired_ratio_test(*_ratios([0.3, -0.3, 2.0, 3.0, 4.0]))
    assert (test.p_value, test.statistic) == (pytest.approx(6 / 32), 1.5)
    assert test.method == "exact permutation (ties)"
    # an equal pair carries no sign: dropped, the same p-value
    agent, baseline = _ratios([0.3, -0.3, 2.0, 3.0, 4.0, 0.0])
    test = paired_ratio_test(agent, baseline)
    assert test.p_value == pytest.approx(6 / 32) and test.pairs == 6
    assert test.method == "exact permutation (ties), 1 equal pair dropped"


def test_runs_are_paired_by_key_not_by_order():
    agent = {("w", 0): 2.0, ("w", 1): 3.0, ("v", 0): 5.0}
    baseline = {("w", 1): 3.0, ("w", 0): 2.0, ("x", 0): 9.0}  # ("v", 0), ("x", 0): unpaired
    test = paired_ratio_test(agent, baseline)
    assert (test.pairs, test.p_value, test.method) == (2, 1.0, "all pairs equal")
    assert test.ratio.center == pytest.approx(1.0)
    nothing = paired_ratio_test({("w", 0): 1.0}, {("w", 1): 1.0})
    assert nothing.pairs == 0 and math.isnan(nothing.p_value)


def test_holm_adjusts_step_down_and_keeps_the_order_monotone():
    # sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.20; running max
    assert holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    adjusted = holm([0.02, math.nan, 0.04])  # nan does not count: m = 2
    assert adjusted[[0, 2]] == pytest.approx([0.04, 0.04]) and math.isnan(adjusted[1])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0


def _agent(values: list[float], workloads: int = 5) -> dict:
    return {(f"w{i % workloads}", i // workloads): v for i, v in enumerate(values)}


def test_agents_not_significantly_different_from_the_leader_share_its_rank():
    rng = np.random.default_rng(0)
    base = rng.uniform(2.0, 20.0, size=10)
    noise = np.array([1.01, 0.99, 1.02, 0.98, 1.01, 0.99, 1.02, 0.98, 1.01, 0.99])
    improvements = {
        "slow": _agent(list(base / 2)),     # worse on all 10 pairs: p = 2/1024
        "best": _agent(list(base)),
        "close": _agent(list(base * noise)),  # up and down around "best"
        "same-as-slow": _agent(list(base / 2)),
    }
    ranks = tied_ranks(improvements)
    assert ranks == {"best": 1, "close": 1, "slow": 3, "same-as-slow": 3}
    assert list(ranks) == ["best", "close", "slow", "same-as-slow"]  # rank order
    # two seeds of one workload can never be told apart (smallest p: 0.5)
    two_seeds = {name: {key: v for key, v in values.items() if key[0] == "w0"}
                 for name, values in improvements.items()}
    assert set(tied_ranks(two_seeds).values()) == {1}


def test_kaplan_meier_treats_runs_that_never_reach_the_level_as_censored():
    # events at 2, 5, 8; censored at 3 and 8. At risk 5: F(2) = 1/5; at 5 (3 at risk):
    # S = 4/5 * 2/3; at 8 (2 at risk): S = 8/15 * 1/2 = 4/15, F = 11/15
    estimate = time_to_reach([2, 3, 5, 8, 8], [True, False, True, True, False])
    assert estimate.median == 8.0  # ignoring the censored runs would say 5
    assert estimate.reached == pytest.approx(11 / 15)
    assert (estimate.runs, estimate.events, estimate.horizon) == (5, 3, 8.0)
    everyone = time_to_reach([1, 2, 3, 4], [True] * 4)
    assert (everyone.median, everyone.reached) == (2.0, 1.0)
    nobody = time_to_reach([32, 32], [False, False])
    assert math.isnan(nobody.median) and nobody.reached == 0.0 and nobody.events == 0
