"""Statistics for comparing two arms of an experiment (docs/metrics.md "Experiments").

Pure functions over counts, standard library only (``statistics.NormalDist``):

* :func:`wilson` — the Wilson score interval of a proportion ``k / n``;
* :func:`two_proportion_z` — the pooled two-proportion z-test, two-sided p-value;
* :func:`min_detectable_effect` — the smallest absolute difference a two-sided test at
  ``alpha`` detects with probability ``power``, for two samples of the given sizes
  around a baseline rate.

A proportion needs ``0 <= k <= n``; with ``n == 0`` there is nothing to say and the
functions return ``None``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["min_detectable_effect", "two_proportion_z", "wilson", "z_quantile"]

_NORMAL = NormalDist()


def z_quantile(p: float) -> float:
    """The standard normal quantile: ``z_quantile(0.975)`` = 1.959964."""
    return _NORMAL.inv_cdf(p)


def _check(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"not a proportion: {k} of {n}")


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """``(low, high)`` of the Wilson score interval for ``k`` successes in ``n`` trials.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n`` and
    ``z`` the two-sided normal quantile of ``confidence``.
    """
    _check(k, n)
    if n == 0:
        return None
    z = z_quantile(1 - (1 - confidence) / 2)
    p = k / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # k = 0 and k = n give exactly 0 and 1 (the formula, up to rounding)
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """``(z, p)`` of the pooled z-test of ``k2/n2`` against ``k1/n1`` (two-sided p-value).

    ``z = (p2 - p1) / sqrt(P(1-P)(1/n1 + 1/n2))`` with ``P = (k1+k2)/(n1+n2)``;
    ``p = 2(1 - Φ(|z|))``.  ``None`` when either sample is empty; ``(0, 1)`` when the
    pooled rate is 0 or 1 (both samples all failures or all successes: no difference).
    """
    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    return z, 2 * (1 - _NORMAL.cdf(abs(z)))


def min_detectable_effect(n1: int, n2: int, baseline: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """``(z_{1-α/2} + z_{power}) · sqrt(p(1-p)(1/n1 + 1/n2))`` with ``p = baseline``.

    The absolute difference in rate that two samples of ``n1`` and ``n2`` detect with a
    two-sided test at ``alpha`` with probability ``power``; ``None`` when a sample is
    empty.  (Both samples' variance is taken at the baseline rate.)
    """
    if not 0 <= baseline <= 1:
        raise ValueError(f"baseline rate {baseline} is not between 0 and 1")
    if n1 <= 0 or n2 <= 0:
        return None
    multiplier = z_quantile(1 - alpha / 2) + z_quantile(power)
    return multiplier * math.sqrt(baseline * (1 - baseline) * (1 / n1 + 1 / n2))
