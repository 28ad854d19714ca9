"""Statistics for races of optimizers: ratios on the log scale, paired tests against a baseline,
ranks with ties and censored samples-to-reach.

* Improvements (speedups) are ratios, so they are summarized by their **geometric mean**, with a
  confidence interval computed on the log scale: a Student-t interval of the log values,
  exponentiated (:func:`geometric_mean_interval`, :func:`log_t_band`). The interval is
  asymmetric around the mean, as ratios are.
* An agent is compared with a baseline by a **paired, two-sided Wilcoxon signed-rank test** of
  ``log(agent / baseline)`` over runs paired by a key, (workload, seed) in reports
  (:func:`paired_ratio_test`). Pairs with equal values carry no sign and are dropped (Wilcoxon's
  treatment of zeros). The null distribution is the exact one when the remaining differences have
  no ties; with ties it is the exact sign-flip permutation distribution of the same statistic
  (every one of the ``2**n`` sign assignments, for ``n <=`` :data:`PERMUTATION_MAX_PAIRS`), and
  the normal approximation with tie and continuity corrections beyond. With ``n`` pairs and no
  ties the smallest attainable p-value is ``2 / 2**n``: two seeds alone can never show a
  difference, which is why reports also pool the workloads.
* p-values of the agents compared with the same baseline are **Holm**-corrected (:func:`holm`).
* Agents are **ranked with ties** (:func:`tied_ranks`): the best agent of those not yet ranked
  takes the next rank, and the others that are not significantly different from it share it.
* Samples to reach a level are **right-censored** for runs that never reach it, and estimated by
  Kaplan--Meier (:func:`time_to_reach`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

CONFIDENCE = 0.95
"""Coverage of the confidence intervals."""
ALPHA = 0.05
"""Significance level of the (Holm-corrected) tests that separate ranks."""
EXACT_MAX_PAIRS = 50
"""Up to this many pairs without ties, Wilcoxon's exact null distribution is used."""
PERMUTATION_MAX_PAIRS = 13
"""Up to this many pairs with ties, the sign-flip permutation distribution is enumerated
exactly (``2**13`` = 8192 sign assignments, fewer than SciPy's 9999 resamples)."""
DECIMALS = 12
"""Log ratios are rounded to this many decimals before testing, so that floating-point noise
does not break ties or turn an equal pair into a difference."""


class Band(NamedTuple):
    """Centers and confidence bounds along an axis (bounds ``nan`` where n < 2)."""

    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval (bounds ``nan`` for n < 2)."""

    center: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, band: Band) -> Interval:
        """The interval of a zero-dimensional :class:`Band`."""
        return cls(float(band.center), float(band.low), float(band.high), int(band.n))


def t_band(values: ArrayLike, axis: int = 0, confidence: float = CONFIDENCE) -> Band:
    """Means along ``axis`` with Student-t confidence intervals, ``nan`` values ignored."""
    data = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(data), axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty slices and n < 2 give nan
        center = np.nanmean(data, axis=axis)
        sem = np.sqrt(np.nanvar(data, axis=axis, ddof=1) / n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem  # df = 0 gives nan
    return Band(center, center - half, center + half, n)


def log_t_band(values: ArrayLike, axis: int = 0, confidence: float = CONFIDENCE) -> Band:
    """Geometric means along ``axis`` with intervals computed on the log scale: the exponential
    of :func:`t_band` of the logs. Values that are not positive and finite are ignored."""
    data = np.asarray(values, dtype=float)
    valid = np.isfinite(data) & (data > 0)
    logs = np.log(np.where(valid, data, 1.0))
    band = t_band(np.where(valid, logs, np.nan), axis, confidence)
    return Band(np.exp(band.center), np.exp(band.low), np.exp(band.high), band.n)


def geometric_mean_interval(values: ArrayLike, confidence: float = CONFIDENCE) -> Interval:
    """The geometric mean with the exponentiated Student-t interval of the log values."""
    return Interval.of(log_t_band(np.ravel(values), confidence=confidence))


@dataclass(frozen=True)
class PairedTest:
    """A two-sided Wilcoxon signed-rank test of ``log(agent / baseline)`` over paired runs."""

    pairs: int
    """Pairs with a valid value on both sides (equal pairs included)."""
    ratio: Interval
    """Geometric mean of the ratios agent / baseline, with its log-scale interval."""
    statistic: float
    """Wilcoxon's W, the smaller of the rank sums of positive and negative differences."""
    p_value: float
    """Two-sided; 1 when every pair is equal, ``nan`` without pairs."""
    method: str
    """How the null distribution was obtained (see the module docstring)."""


def paired_ratio_test(agent: Mapping[Hashable, float],
                      baseline: Mapping[Hashable, float]) -> PairedTest:
    """Compare ``agent`` with ``baseline``, pairing their values by key (keys on one side only
    are left out)."""
    pairs = np.array([(agent[key], baseline[key]) for key in agent if key in baseline],
                     dtype=float).reshape(-1, 2)
    pairs = pairs[np.all(np.isfinite(pairs) & (pairs > 0), axis=1)]
    if len(pairs) == 0:
        return PairedTest(0, Interval(math.nan, math.nan, math.nan, 0), math.nan, math.nan,
                          "no pairs")
    ratios = pairs[:, 0] / pairs[:, 1]
    ratio = geometric_mean_interval(ratios)
    differences = np.round(np.log(ratios), DECIMALS)
    differences = differences[differences != 0]
    if len(differences) == 0:
        return PairedTest(len(ratios), ratio, 0.0, 1.0, "all pairs equal")
    has_ties = len(np.unique(np.abs(differences))) < len(differences)
    method: str | stats.PermutationMethod
    if not has_ties and len(differences) <= EXACT_MAX_PAIRS:
        method, description = "exact", "exact"
    elif len(differences) <= PERMUTATION_MAX_PAIRS:
        method, description = stats.PermutationMethod(), "exact permutation (ties)"
    else:
        method, description = "asymptotic", "normal approximation"
    result = stats.wilcoxon(differences, method=method)
    dropped = len(ratios) - len(differences)
    if dropped:
        description += f", {dropped} equal pair{'s' if dropped > 1 else ''} dropped"
    return PairedTest(len(ratios), ratio, float(result.statistic), float(result.pvalue),
                      description)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (``nan`` stays ``nan`` and does not count): the i-th
    smallest of m p-values becomes ``max over j <= i of min(1, (m - j + 1) * p_(j))``."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def tied_ranks(improvements: Mapping[str, Mapping[Hashable, float]],
               alpha: float = ALPHA) -> dict[str, int]:
    """Competition ranks (1, 1, 3, ...) that only separate significantly different agents.

    ``improvements`` maps each agent to its improvement per pairing key. Agents are ordered by
    the geometric mean of their improvements (agents without a valid one last). Then, until every
    agent is ranked: the first unranked agent, the *leader*, takes rank 1 + the number of agents
    ranked before it; every other unranked agent is compared with the leader by
    :func:`paired_ratio_test`, the p-values Holm-corrected over those comparisons; those whose
    adjusted p-value is not below ``alpha`` (including those that cannot be tested, without
    pairs) share the leader's rank. Returns agent -> rank, in rank order.
    """
    def order_key(agent: str) -> tuple[bool, float]:
        center = geometric_mean_interval(list(improvements[agent].values())).center
        return math.isnan(center), -center

    remaining = sorted(improvements, key=order_key)
    ranks: dict[str, int] = {}
    while remaining:
        leader, *others = remaining
        rank = len(ranks) + 1
        ranks[leader] = rank
        adjusted = holm([paired_ratio_test(improvements[other], improvements[leader]).p_value
                         for other in others])
        tied = {other for other, p in zip(others, adjusted, strict=True) if not p < alpha}
        ranks.update(dict.fromkeys(sorted(tied, key=others.index), rank))
        remaining = [other for other in others if other not in tied]
    return ranks


@dataclass(frozen=True)
class TimeToReach:
    """The Kaplan--Meier estimate of the time (measurements) until a level is reached."""

    median: float
    """The first time at which the estimated fraction of runs that reached the level is at least
    1/2; ``nan`` if it stays below (the median is then beyond :attr:`horizon`)."""
    reached: float
    """The estimated fraction of runs that reached the level by :attr:`horizon`."""
    runs: int
    events: int
    """Runs that reached the level."""
    horizon: float
    """The largest time observed (reached or censored)."""


def time_to_reach(times: Sequence[float], reached: Sequence[bool]) -> TimeToReach:
    """Kaplan--Meier estimate from each run's time: when it reached the level (``reached``), or
    when it was last observed without reaching it (right-censored)."""
    observed = np.asarray(times, dtype=float)
    hit = np.asarray(reached, dtype=bool)
    horizon = float(observed.max()) if len(observed) else math.nan
    if not hit.any():
        return TimeToReach(math.nan, 0.0, len(observed), 0, horizon)
    cdf = stats.ecdf(stats.CensoredData(uncensored=observed[hit], right=observed[~hit])).cdf
    past_half = np.flatnonzero(cdf.probabilities >= 0.5 - 1e-12)
    median = float(cdf.quantiles[past_half[0]]) if len(past_half) else math.nan
    return TimeToReach(median, float(cdf.evaluate(horizon)), len(observed), int(hit.sum()), horizon)
