"""Pareto/NBD, the original "buy till you die" model of non-contractual purchasing.

Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They and What Will
They Do Next?", Management Science 33(1); the likelihood and conditional expectation in the
closed forms of Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related
Expressions". While alive a customer buys as a Poisson process with rate ``lambda ~ Gamma(r,
alpha)``; their lifetime is exponential with rate ``mu ~ Gamma(s, beta)`` (BG/NBD, beside it in
:mod:`churn_prediction.training.bgnbd`, lets customers drop out only right after a purchase). A
customer is summarised by the same ``(x, t_x, T)``: repeat purchases, time of the last one and
time observed, each from the first purchase, in days here.

:func:`fit_pareto_nbd` maximises the likelihood over the log-parameters;
:meth:`ParetoNBD.p_alive` and :meth:`ParetoNBD.expected_purchases` (the
expected purchases in the next ``t``) are the published closed forms.

Numerics: the likelihood's ``A_0`` term holds Gauss hypergeometric functions
``2F1(r+s+x, b; r+s+x+1; z)`` that overflow for frequent buyers (``z`` near 1, large ``x``).
Euler's transformation ``2F1(a, b; c; z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z)`` turns each into a
power (taken in logs) times ``2F1(1, b'; c; z)`` with ``c > b'``, which lies in ``[1, 1/(1-z)]``,
and the difference in ``A_0`` is taken in log space.

Pure numpy/scipy; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

__all__ = ["ParetoNBD", "fit_pareto_nbd", "log_likelihood"]

FloatArray = npt.NDArray[np.float64]


def _arrays(
    x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64)
    txs = np.asarray(t_x, dtype=np.float64)
    Ts = np.asarray(T, dtype=np.float64)
    if not (xs.shape == txs.shape == Ts.shape):
        raise ValueError("x, t_x and T must have the same length")
    return xs, txs, Ts


def _log_term(
    params: tuple[float, float, float, float], xs: FloatArray, ts: FloatArray
) -> FloatArray:
    """``log(2F1(...; z(t)) / (max(alpha, beta) + t)^(r+s+x))``, one of the two terms of ``A_0``
    (Fader & Hardie 2005), through Euler's transformation (see the module docstring)."""
    r, alpha, s, beta = params
    c = r + s + xs + 1.0
    if alpha >= beta:
        z = (alpha - beta) / (alpha + ts)
        power = -s * np.log(beta + ts) - (r + xs) * np.log(alpha + ts)
        series = hyp2f1(1.0, r + xs, c, z)
    else:
        z = (beta - alpha) / (beta + ts)
        power = (1.0 - r - xs) * np.log(alpha + ts) - (1.0 + s) * np.log(beta + ts)
        series = hyp2f1(1.0, s + 1.0, c, z)
    return np.asarray(power + np.log(series), dtype=np.float64)


def log_likelihood(
    params: tuple[float, float, float, float],
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Per-customer ``log L(r, alpha, s, beta | x, t_x, T)`` (Fader & Hardie 2005)."""
    r, alpha, s, beta = params
    xs, txs, Ts = _arrays(x, t_x, T)
    head = gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + xs) * np.log(alpha + Ts) - s * np.log(beta + Ts)
    upper = _log_term(params, xs, txs)
    lower = _log_term(params, xs, Ts)
    # A_0 = e^upper - e^lower >= 0 (t_x <= T); 0 when the last purchase is at T.
    with np.errstate(divide="ignore"):
        log_a0 = upper + np.log1p(-np.exp(np.minimum(lower - upper, 0.0)))
    died = np.log(s) - np.log(r + s + xs) + log_a0
    return np.asarray(head + np.logaddexp(alive, died), dtype=np.float64)


@dataclass(frozen=True)
class ParetoNBD:
    """Fitted Pareto/NBD parameters (time unit: that of the ``t_x``/``T`` it was fitted on)."""

    r: float
    alpha: float
    s: float
    beta: float

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.s, self.beta)

    def _log_alive_part(self, xs: FloatArray, Ts: FloatArray) -> FloatArray:
        """Log of the likelihood's term for a customer still alive at ``T``."""
        r, alpha, s, beta = self.params
        return np.asarray(
            gammaln(r + xs)
            - gammaln(r)
            + r * np.log(alpha)
            + s * np.log(beta)
            - (r + xs) * np.log(alpha + Ts)
            - s * np.log(beta + Ts),
            dtype=np.float64,
        )

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(the customer is still alive at ``T``) (Fader & Hardie 2005): the alive
        term's share of the likelihood."""
        xs, txs, Ts = _arrays(x, t_x, T)
        log_p = self._log_alive_part(xs, Ts) - log_likelihood(self.params, xs, txs, Ts)
        return np.asarray(np.exp(np.minimum(log_p, 0.0)), dtype=np.float64)

    def expected_purchases(
        self, t: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """``E[Y(t) | x, t_x, T]``: expected purchases in the next ``t`` (Fader & Hardie 2005):
        ``P(alive) (r + x)(beta + T) / ((alpha + T)(s - 1)) (1 - ((beta + T) / (beta +
        T + t))^(s - 1))``, its limit ``... log((beta + T + t) / (beta + T))`` at ``s = 1``."""
        r, alpha, s, beta = self.params
        xs, txs, Ts = _arrays(x, t_x, T)
        log_q = np.log(beta + Ts) - np.log(beta + Ts + t)
        # (1 - q^(s-1)) / (s-1), and its limit -log(q) at s = 1.
        horizon = -log_q if abs(s - 1.0) < 1e-9 else -np.expm1((s - 1.0) * log_q) / (s - 1.0)
        rate = (r + xs) * (beta + Ts) / (alpha + Ts)
        out = self.p_alive(xs, txs, Ts) * rate * horizon
        return np.asarray(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), np.float64)


def fit_pareto_nbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    start: ParetoNBD | None = None,
) -> ParetoNBD:
    """Maximum-likelihood Pareto/NBD parameters for the customers ``(x, t_x, T)``.

    Minimises the mean negative log-likelihood over ``log`` of the four (positive) parameters
    (BFGS with numerical gradients, Nelder-Mead when BFGS ends on a non-finite value) from a
    data-driven start; ``start`` (a fit on similar customers) only speeds convergence. Rows
    with a non-positive or missing ``T`` are left out. Raises ``ValueError`` without customers
    or when the optimiser fails.
    """
    xs, txs, Ts = _arrays(x, t_x, T)
    keep = np.isfinite(xs) & np.isfinite(txs) & np.isfinite(Ts) & (Ts > 0)
    xs, txs, Ts = xs[keep], np.clip(txs[keep], 0.0, Ts[keep]), Ts[keep]
    if len(xs) == 0:
        raise ValueError("Pareto/NBD needs at least one customer with a positive age")

    def objective(log_params: FloatArray) -> float:
        r, alpha, s, beta = np.exp(np.clip(log_params, -12.0, 12.0)).tolist()
        value = float(log_likelihood((r, alpha, s, beta), xs, txs, Ts).mean())
        return -value if np.isfinite(value) else 1e12

    scale = max(float(Ts.mean()), 1e-3)
    initial = np.log(start.params) if start is not None else np.log([1.0, scale, 1.0, scale])
    # Far from a good start the optimiser can wander to extreme parameters, where the
    # hypergeometric terms are slow to evaluate: start from a fit of the purchase process (BG/NBD
    # shares it) when there is one.
    result = minimize(objective, initial, method="BFGS", options={"gtol": 1e-5})
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.fun) and result.fun < 1e12):
        result = minimize(objective, initial, method="Nelder-Mead", options={"maxiter": 4000})
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.fun) and result.fun < 1e12):
        raise ValueError(f"Pareto/NBD fit failed: {result.message}")
    r, alpha, s, beta = np.exp(np.clip(result.x, -12.0, 12.0)).tolist()
    return ParetoNBD(r=r, alpha=alpha, s=s, beta=beta)
