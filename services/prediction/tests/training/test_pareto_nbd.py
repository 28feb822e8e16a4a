"""Pareto/NBD (pure): a published reference figure, the likelihood against numerical integration
of the model's story, and parameter recovery on simulated customers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from churn_prediction.training.pareto_nbd import ParetoNBD, fit_pareto_nbd, log_likelihood

#: The parameters fitted to the CDNOW sample (time in weeks; Fader, Hardie & Lee 2005).
CDNOW = ParetoNBD(r=0.553, alpha=10.578, s=0.606, beta=11.669)


def test_conditional_expectation_matches_the_published_cdnow_example() -> None:
    # The BTYD package's walkthrough: a customer with x = 26, t_x = 30.86, T = 31 weeks is
    # expected to make 25.46 purchases in the next 52 weeks.
    expected = CDNOW.expected_purchases(52.0, [26], [30.86], [31.0])
    assert expected[0] == pytest.approx(25.46, abs=0.01)


def _integrated_log_likelihood(
    params: tuple[float, float, float, float], x: float, t_x: float, T: float
) -> float:
    """``log E[L(lambda, mu | x, t_x, T)]`` over ``lambda ~ Gamma(r, alpha)`` and ``mu ~
    Gamma(s, beta)``, by Gauss-Legendre quadrature over their quantiles: the individual-level
    likelihood of the model's story (buy at rate lambda until an exponential death at rate mu),
    independent of the closed form."""
    r, alpha, s, beta = params
    nodes, weights = np.polynomial.legendre.leggauss(800)
    u, w = (nodes + 1.0) / 2.0, weights / 2.0
    lam = stats.gamma.ppf(u, r, scale=1.0 / alpha)[:, None]
    mu = stats.gamma.ppf(u, s, scale=1.0 / beta)[None, :]
    both = lam + mu
    individual = lam**x * np.exp(-both * T) + lam**x * mu / both * (
        np.exp(-both * t_x) - np.exp(-both * T)
    )
    return float(np.log((w[:, None] * w[None, :] * individual).sum()))


@pytest.mark.parametrize(
    "params",
    [CDNOW.params, (2.0, 3.0, 0.7, 20.0), (1.3, 8.0, 1.5, 2.0)],  # alpha <, >, > beta
)
@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 10.0), (2, 5.0, 20.0), (5, 30.0, 31.0)])
def test_log_likelihood_is_the_story_integrated_over_the_population(
    params: tuple[float, float, float, float], x: int, t_x: float, T: float
) -> None:
    closed_form = log_likelihood(params, [x], [t_x], [T])[0]
    assert closed_form == pytest.approx(_integrated_log_likelihood(params, x, t_x, T), abs=1e-5)


def test_frequent_buyers_do_not_overflow() -> None:
    # Hundreds of purchases with alpha far below beta: the raw hypergeometric terms overflow.
    params = (10.465, 7.98565181e-03, 3.0516, 2.820)
    ll = log_likelihood(params, [400.0, 500.0, 500.0], [5.0, 1.0, 4.0], [6.0, 37.0, 37.0])
    assert np.all(np.isfinite(ll))
    alive = ParetoNBD(*params).p_alive([400.0, 500.0], [5.0, 1.0], [6.0, 37.0])
    assert np.all((alive >= 0) & (alive <= 1))


def test_recent_buyers_are_more_likely_alive_and_expected_to_buy_more() -> None:
    alive = CDNOW.p_alive([2, 2, 0], [38.0, 5.0, 0.0], [38.86, 38.86, 38.86])
    assert 0 < alive[1] < alive[0] <= 1
    assert 0 < alive[2] < 1  # unlike BG/NBD, a one-time buyer may be gone
    later = CDNOW.expected_purchases(39.0, [2, 2], [38.0, 5.0], [38.86, 38.86])
    assert later[0] > later[1] > 0


def test_the_expectation_is_continuous_at_s_equal_to_one() -> None:
    at_one = ParetoNBD(0.8, 6.0, 1.0, 12.0).expected_purchases(30.0, [3], [20.0], [40.0])
    near = ParetoNBD(0.8, 6.0, 1.0 + 1e-6, 12.0).expected_purchases(30.0, [3], [20.0], [40.0])
    assert at_one[0] == pytest.approx(near[0], rel=1e-5)


def _simulate(
    truth: ParetoNBD, n: int, seed: int, horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers whose first purchase is at 0, observed for T in [20, 60], and their purchases in
    (T, T + horizon]: the Pareto/NBD story drawn directly."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(truth.r, 1.0 / truth.alpha, size=n)
    mu = rng.gamma(truth.s, 1.0 / truth.beta, size=n)
    death = rng.exponential(1.0 / mu)
    T = rng.uniform(20.0, 60.0, size=n)
    seen = np.minimum(death, T)
    x = rng.poisson(lam * seen).astype(np.float64)
    t_x = np.array(
        [rng.uniform(0.0, s, int(k)).max() if k else 0.0 for s, k in zip(seen, x, strict=True)]
    )
    future = rng.poisson(lam * np.clip(np.minimum(death, T + horizon) - T, 0.0, None))
    return x, t_x, T, future.astype(np.float64)


def test_fit_recovers_simulated_parameters_and_predicts_future_purchases() -> None:
    truth = ParetoNBD(r=0.8, alpha=6.0, s=0.7, beta=12.0)
    x, t_x, T, future = _simulate(truth, 5000, seed=1, horizon=30.0)

    fitted = fit_pareto_nbd(x, t_x, T)

    for got, want in zip(fitted.params, truth.params, strict=True):
        assert got == pytest.approx(want, rel=0.25)
    assert log_likelihood(fitted.params, x, t_x, T).sum() >= (
        log_likelihood(truth.params, x, t_x, T).sum()
    )
    expected = fitted.expected_purchases(30.0, x, t_x, T)
    assert expected.sum() == pytest.approx(future.sum(), rel=0.05)
    assert np.corrcoef(expected, future)[0, 1] > 0.7


def test_fit_refuses_no_customers() -> None:
    with pytest.raises(ValueError, match="positive age"):
        fit_pareto_nbd([1.0], [0.0], [0.0])
