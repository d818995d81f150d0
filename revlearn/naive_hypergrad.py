"""Hypergradients from a naive float reversal: the wrong answer, for contrast.

``naive_hypergrad`` runs exactly the reverse-pass recursion of
``revlearn.hypergrad`` (the same loop, ``reverse_accumulate``, with the same
Hessian-vector products, accumulating in float64), but recovers x_t and v_t
the naive way: by running the momentum update backwards in a plain numpy
float type.  Rounding errors grow by 1/beta per reverse step, so after enough
steps the recovered trajectory -- and every hypergradient computed along it --
is wrong.  Nothing here raises on that: the point is to look at the damage.
``x0_error`` says how far off the reversal ended up, so a wrong result is
never silent.
"""
from dataclasses import dataclass

import numpy as np

from .autodiff import meta_value_and_grad, train_gradient, train_hvp
from .hypergrad import reverse_accumulate
from .naive import FLOAT_TYPES
from .rational import DEFAULT_DENOMINATOR_BITS
from .training import prepare


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
    _, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, None, groups,
                                              denominator_bits, meta, v0)
    gradx = train_gradient(train_loss, unflatten)
    hvp = train_hvp(gradx)
    f = meta_value_and_grad(meta_loss, unflatten)
    T = plan.T
    # The update's coefficients, rounded once to the working precision.
    coeffs = [(ft(plan.at("alphas", t)), ft(plan.at("betas", t)), ft(1 - plan.at("betas", t)))
              for t in range(T)]
    v0 = plan.init_arrays(x0, init)["v"]

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
    x_recovered = np.empty_like(x_forward)
    x_recovered[T] = x
    state = {"x": x, "v": v}

    def naive_steps():
        # x_t = x_{t+1} - a v_{t+1}; g_t at that x; v_t = (v_{t+1} + (1 - b) g_t) / b
        for t in range(T - 1, -1, -1):
            a, b, omb = coeffs[t]
            post = [state["v"].astype(np.float64)]
            state["x"] = state["x"] - a * state["v"]
            xf = state["x"].astype(np.float64)
            g, vjp = hvp(xf, m, t)
            state["v"] = (state["v"] + omb * g.astype(ft)) / b
            x_recovered[t] = xf
            yield t, post, [state["v"].astype(np.float64)], g, vjp

    with np.errstate(all="ignore"):   # overflow to inf/NaN is part of what we show
        adj, dm = reverse_accumulate(plan, naive_steps(), dx, dm, check=False)
        err = np.max(np.abs(x_recovered[0] - x_forward[0]))
    d_opt, d_init = plan.gradients(adj)
    return NaiveHypergradResult(
        meta_loss=value, d_x0=adj["x"], d_v0=d_init["v"], d_alphas=d_opt.alphas,
        d_betas=d_opt.betas, d_meta=dm if meta is None else unflatten(dm),
        x_forward=x_forward, x_recovered=x_recovered,
        x0_error=float(err) if np.isfinite(err) else float("inf"), dtype=ft, T=T)
