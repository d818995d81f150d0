"""Hypergradients from a naive float reversal: the wrong answer, for contrast.

``naive_hypergrad`` runs exactly the reverse-pass recursion of
``revlearn.hypergrad`` (same Hessian-vector products, same accumulation in
float64), but recovers x_t and v_t the naive way: by running the momentum
update backwards in a plain numpy float type.  Rounding errors grow by 1/beta
per reverse step, so after enough steps the recovered trajectory -- and every
hypergradient computed along it -- is wrong.  Nothing here raises on that: the
point is to look at the damage.  ``x0_error`` says how far off the reversal
ended up, so a wrong result is never silent.
"""
from dataclasses import dataclass

import numpy as np

from .autodiff import flat_meta, meta_value_and_grad, train_gradient, train_hvp
from .hypergrad import _unflat
from .momentum import _as_vector
from .naive import FLOAT_TYPES
from .rational import DEFAULT_DENOMINATOR_BITS
from .schedules import Schedule



@dataclass
class NaiveHypergradResult:
    """What ``naive_hypergrad`` returns; gradients have the shapes of their inputs.

    ``x_recovered[t]`` is the naively recovered x_t (row T is the end of
    training), ``x_forward[t]`` the forward pass's x_t, and ``x0_error`` the
    largest |recovered x_0 - x_0| (inf if the reversal overflowed).
    """
    meta_loss: float
    d_x0: np.ndarray
    d_v0: np.ndarray
    d_alphas: np.ndarray
    d_betas: np.ndarray
    d_meta: object
    x_forward: np.ndarray
    x_recovered: np.ndarray
    x0_error: float
    dtype: type
    T: int


def _float_type(dtype):
    """Accept "float16"/"float32"/"float64" or the numpy types themselves."""
    for name, ft in FLOAT_TYPES.items():
        if dtype is ft or (isinstance(dtype, (str, np.dtype)) and dtype == name):
            return ft
    raise ValueError(f"dtype must be one of {list(FLOAT_TYPES)} (or the numpy type), got "
                     f"{dtype!r}; for other precisions use revlearn.reverse_naive")


def naive_hypergrad(train_loss, meta_loss, x0, alphas, betas, meta=None, *, dtype="float32",
                    v0=None, groups=None, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Hypergradient of ``meta_loss(x_T, meta)`` with x_t, v_t recovered by naive reversal.

    Same arguments as ``revlearn.hypergrad`` (betas are rounded to the same
    fractions n/d, so the two are comparable), plus ``dtype``: the float type
    in which training runs forwards and then backwards.  Gradients of
    ``train_loss`` are computed in float64 at the dtype's x and rounded to
    ``dtype``; the hypergradient itself accumulates in float64.  Returns a
    ``NaiveHypergradResult``; its numbers are only as good as ``x0_error`` says.
    """
    ft = _float_type(dtype)
    x0 = _as_vector(x0, "x0")
    v0 = np.zeros_like(x0) if v0 is None else _as_vector(v0, "v0", len(x0))
    sched = Schedule(alphas, betas, len(x0), groups, denominator_bits)
    m, unflatten = flat_meta(meta)
    gradx = train_gradient(train_loss, unflatten)
    hvp = train_hvp(gradx)
    f = meta_value_and_grad(meta_loss, unflatten)
    T = sched.T
    # The update's coefficients, rounded once to the working precision.
    coeffs = [(ft(sched.alpha(t)), ft(sched.beta(t)), ft(1 - sched.beta(t))) for t in range(T)]

    x, v = x0.astype(ft), v0.astype(ft)
    x_forward = np.empty((T + 1, len(x0)))
    x_forward[0] = x
    for t in range(T):
        a, b, omb = coeffs[t]
        g = np.asarray(gradx(x.astype(np.float64), m, t), dtype=np.float64).astype(ft)
        v = b * v - omb * g
        x = x + a * v
        x_forward[t + 1] = x

    value, dx, dm = f(x.astype(np.float64), m)
    dv = np.zeros_like(dx)
    d_alphas = np.zeros_like(sched.alphas)
    d_betas = np.zeros_like(sched.alphas)
    x_recovered = np.empty_like(x_forward)
    x_recovered[T] = x
    with np.errstate(all="ignore"):   # overflow to inf/NaN is part of what we show
        for t in range(T - 1, -1, -1):
            a, b, omb = coeffs[t]
            d_alphas[t] = sched.reduce(dx * v.astype(np.float64))
            x = x - a * v                                  # naive: x_t = x_{t+1} - a v_{t+1}
            xf = x.astype(np.float64)
            g, vjp = hvp(xf, m, t)
            v = (v + omb * g.astype(ft)) / b               # naive: divide by beta
            x_recovered[t] = xf
            dv += sched.alpha(t) * dx
            d_betas[t] = sched.reduce(dv * (v.astype(np.float64) + g))
            hx, hm = vjp((1 - sched.beta(t)) * dv)   # as in hypergrad: per-group betas
            dx -= hx
            dm = dm - hm
            dv *= sched.beta(t)
        err = np.max(np.abs(x_recovered[0] - x_forward[0]))
    return NaiveHypergradResult(
        meta_loss=value, d_x0=dx, d_v0=dv, d_alphas=d_alphas, d_betas=d_betas,
        d_meta=_unflat(dm, unflatten, meta), x_forward=x_forward, x_recovered=x_recovered,
        x0_error=float(err) if np.isfinite(err) else float("inf"), dtype=ft, T=T)
