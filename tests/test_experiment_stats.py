"""bot.effectiveness.stats against values worked out by hand (the arithmetic is in the comments).

z_{0.975} = 1.959964 (z² = 3.841459), z_{0.8} = 0.841621 (standard normal tables).
"""

from __future__ import annotations

import pytest

from bot.effectiveness.stats import (
    min_detectable_effect,
    two_proportion_z,
    wilson,
    z_quantile,
)


def test_quantiles() -> None:
    assert z_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert z_quantile(0.8) == pytest.approx(0.841621, abs=1e-6)


def test_wilson_45_of_100() -> None:
    # p = 0.45, n = 100, z² / n = 0.03841459
    # denominator = 1 + 0.03841459 = 1.03841459
    # centre = (0.45 + 3.841459 / 200) / 1.03841459 = 0.46920729 / 1.03841459 = 0.451850
    # half = 1.959964 * sqrt(0.45 * 0.55 / 100 + 3.841459 / 40000) / 1.03841459
    #      = 1.959964 * sqrt(0.002475 + 0.0000960365) / 1.03841459
    #      = 1.959964 * 0.0507054 / 1.03841459 = 0.0957045
    # interval: 0.451850 -/+ 0.095704 = (0.356146, 0.547554)
    low, high = wilson(45, 100)  # type: ignore[misc]
    assert low == pytest.approx(0.356146, abs=1e-5)
    assert high == pytest.approx(0.547554, abs=1e-5)


def test_wilson_edges() -> None:
    # 0 of 10: denominator 1.3841459, centre 0.1920729 / 1.3841459 = 0.138767,
    # half = 1.959964 * sqrt(3.841459 / 400) / 1.3841459 = 1.959964 * 0.0979982 / 1.3841459 = 0.138767
    # → (0, 0.277533): never below 0, unlike the normal approximation's (0, 0)
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and high == pytest.approx(0.277533, abs=1e-5)
    low, high = wilson(10, 10)  # type: ignore[misc]  # symmetric: (1 - 0.277533, 1)
    assert high == 1.0 and low == pytest.approx(0.722467, abs=1e-5)
    assert wilson(0, 0) is None
    with pytest.raises(ValueError, match="not a proportion: 11 of 10"):
        wilson(11, 10)


def test_two_proportion_z_45_vs_30_of_100() -> None:
    # pooled P = (30 + 45) / 200 = 0.375; P(1-P) = 0.234375
    # se = sqrt(0.234375 * (1/100 + 1/100)) = sqrt(0.0046875) = 0.0684653
    # z = (0.45 - 0.30) / 0.0684653 = 2.190890
    # p = 2 * (1 - Φ(2.190890)) = 2 * (1 - 0.985770) = 0.028460
    z, p = two_proportion_z(30, 100, 45, 100)  # type: ignore[misc]
    assert z == pytest.approx(2.190890, abs=1e-5)
    assert p == pytest.approx(0.028460, abs=1e-5)
    # the other way round: same p, opposite sign
    z, p = two_proportion_z(45, 100, 30, 100)  # type: ignore[misc]
    assert z == pytest.approx(-2.190890, abs=1e-5) and p == pytest.approx(0.028460, abs=1e-5)


def test_two_proportion_z_edges() -> None:
    assert two_proportion_z(0, 0, 3, 10) is None
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0)  # nothing happened in either arm
    # equal rates: z = 0, p = 1
    z, p = two_proportion_z(30, 100, 60, 200)  # type: ignore[misc]
    assert z == pytest.approx(0.0) and p == pytest.approx(1.0)


def test_min_detectable_effect_n_1000_at_0_3() -> None:
    # (z_{0.975} + z_{0.8}) = 1.959964 + 0.841621 = 2.801585
    # sqrt(0.3 * 0.7 * (1/1000 + 1/1000)) = sqrt(0.00042) = 0.0204939
    # MDE = 2.801585 * 0.0204939 = 0.057415 (5.7 percentage points)
    assert min_detectable_effect(1000, 1000, 0.3) == pytest.approx(0.057415, abs=1e-5)
    # uneven arms 500 / 1500: sqrt(0.21 * (0.002 + 0.000666667)) = sqrt(0.00056) = 0.0236643
    # MDE = 2.801585 * 0.0236643 = 0.066298
    assert min_detectable_effect(500, 1500, 0.3) == pytest.approx(0.066298, abs=1e-5)
    # four times the sample halves the MDE: 0.057415 / 2 = 0.028708
    assert min_detectable_effect(4000, 4000, 0.3) == pytest.approx(0.028708, abs=1e-5)
    assert min_detectable_effect(0, 1000, 0.3) is None
    with pytest.raises(ValueError, match="baseline"):
        min_detectable_effect(10, 10, 1.5)
