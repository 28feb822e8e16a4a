"""BG/NBD (pure): the paper's reference figures and parameter recovery on simulated customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_prediction.training.bgnbd import BGNBD, fit_bgnbd, log_likelihood, rfm_from_features

#: Fader, Hardie & Lee (2005): the parameters fitted to the CDNOW sample (time in weeks).
CDNOW = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_conditional_expectation_matches_the_papers_cdnow_example() -> None:
    # FHL 2005, section 5: a customer with x = 2, t_x = 30.43, T = 38.86 weeks is expected to
    # make 1.226 purchases in the next 39 weeks.
    expected = CDNOW.expected_purchases(39.0, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=5e-4)


def test_one_time_buyers_are_alive_and_recent_buyers_more_likely_alive() -> None:
    alive = CDNOW.p_alive([0, 2, 2], [0.0, 38.0, 5.0], [38.86, 38.86, 38.86])
    assert alive[0] == 1.0
    assert 0 < alive[2] < alive[1] < 1
    # More expected purchases for the recent buyer than for the lapsed one.
    later = CDNOW.expected_purchases(39.0, [2, 2], [38.0, 5.0], [38.86, 38.86])
    assert later[0] > later[1] > 0


def test_log_likelihood_of_a_one_time_buyer_is_the_closed_form() -> None:
    # x = 0: L = (alpha / (alpha + T))^r, the Gamma-Poisson probability of no purchase.
    r, alpha, _, _ = CDNOW.params
    ll = log_likelihood(CDNOW.params, [0], [0.0], [10.0])
    assert ll[0] == pytest.approx(r * np.log(alpha / (alpha + 10.0)))


def _simulate(
    truth: BGNBD, n: int, seed: int, horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers whose first purchase is at 0, observed for T in [20, 60], plus their purchases
    in (T, T + horizon]: the generative story of BG/NBD, drawn directly."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(truth.r, 1.0 / truth.alpha, size=n)
    p = rng.beta(truth.a, truth.b, size=n)
    T = rng.uniform(20.0, 60.0, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i]) if lam[i] > 0 else np.inf
            if t > T[i] + horizon:
                break
            if t <= T[i]:
                x[i] += 1
                t_x[i] = t
            else:
                future[i] += 1
            if rng.random() < p[i]:
                break
    return x, t_x, T, future


def test_fit_recovers_known_parameters_and_predicts_held_out_purchases() -> None:
    truth = BGNBD(r=0.6, alpha=4.0, a=1.4, b=3.5)
    x, t_x, T, future = _simulate(truth, 6000, seed=3, horizon=30.0)
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.r == pytest.approx(truth.r, rel=0.15)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.25)
    assert fitted.a == pytest.approx(truth.a, rel=0.35)
    assert fitted.b == pytest.approx(truth.b, rel=0.35)
    # The maximum is at least as likely as the truth, and better than a perturbed point.
    total = log_likelihood(fitted.params, x, t_x, T).sum()
    assert total >= log_likelihood(truth.params, x, t_x, T).sum()
    assert total > log_likelihood((1.2, 4.0, 1.4, 3.5), x, t_x, T).sum()
    # Held-out purchases: the total is right, and the expectation ranks customers.
    predicted = fitted.expected_purchases(30.0, x, t_x, T)
    assert predicted.sum() == pytest.approx(future.sum(), rel=0.1)
    assert np.corrcoef(predicted, future)[0, 1] > 0.4


def test_rfm_summary_from_behavioural_features() -> None:
    frame = pd.DataFrame(
        {
            "total_orders": [3.0, 1.0, 0.0],
            "days_since_last_order": [10.0, 40.0, None],
            "account_age_days": [100.0, 40.0, 5.0],
        }
    )
    x, t_x, T = rfm_from_features(frame)
    assert x.tolist() == [2.0, 0.0, 0.0]
    assert t_x.tolist() == [90.0, 0.0, 0.0]
    assert T.tolist() == [100.0, 40.0, 5.0]


def test_fit_refuses_an_empty_history() -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        fit_bgnbd([], [], [])


def test_analytic_gradient_matches_finite_differences() -> None:
    from scipy.optimize import approx_fprime

    from churn_prediction.training.bgnbd import _log_likelihood_and_gradient

    x, t_x, T, _ = _simulate(BGNBD(r=0.6, alpha=4.0, a=1.4, b=3.5), 500, seed=8, horizon=1.0)
    point = np.array([0.7, 5.0, 1.1, 2.5])
    _, gradient = _log_likelihood_and_gradient(point, x, t_x, T)
    numeric = approx_fprime(point, lambda p: log_likelihood(tuple(p), x, t_x, T).sum(), 1e-6)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4)
    value, _ = _log_likelihood_and_gradient(point, x, t_x, T)
    assert value == pytest.approx(log_likelihood(tuple(point), x, t_x, T).sum())
