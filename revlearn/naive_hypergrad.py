"""Hypergradients from a naive float reversal: the wrong answer, for contrast.

``naive_hypergrad`` runs exactly the reverse-pass recursion of
``revlearn.hypergrad`` (the same loop, ``reverse_accumulate``, with the same
Hessian-vector products, accumulating in float64), but recovers the states
the naive way: by running the update (momentum's or Adam's) backwards in a
plain numpy float type.  Rounding errors grow by 1/beta per reverse step, so after enough
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
    d_optimizer: object = None


def _float_type(dtype):
    """Accept "float16"/"float32"/"float64" or the numpy types themselves."""
    for name, ft in FLOAT_TYPES.items():
        if dtype is ft or (isinstance(dtype, (str, np.dtype)) and dtype == name):
            return ft
    raise ValueError(f"dtype must be one of {list(FLOAT_TYPES)} (or the numpy type), got "
                     f"{dtype!r}; for other precisions use revlearn.reverse_naive")


def naive_hypergrad(train_loss, meta_loss, x0, alphas=None, betas=None, meta=None, *,
                    optimizer=None, dtype="float32", v0=None, groups=None,
                    denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Hypergradient of ``meta_loss(x_T, meta)`` with the states recovered by naive reversal.

    Same arguments as ``revlearn.hypergrad`` (decays are rounded to the same
    fractions n/d, so the two are comparable), plus ``dtype``: the float type
    in which training runs forwards and then backwards.  Gradients of
    ``train_loss`` are computed in float64 at the dtype's x and rounded to
    ``dtype``; the hypergradient itself accumulates in float64.  Returns a
    ``NaiveHypergradResult``; its numbers are only as good as ``x0_error`` says.
    """
    ft = _float_type(dtype)
    opt, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                                denominator_bits, meta, v0)
    gradx = train_gradient(train_loss, unflatten)
    hvp = train_hvp(gradx)
    f = meta_value_and_grad(meta_loss, unflatten)
    T, n = plan.T, len(plan.names)
    # The update's coefficients, rounded once to the working precision.
    coeffs = [tuple(ft(c) for c in plan.coefficients(t)) for t in range(T)]
    state = plan.float_init(x0.astype(ft), {k: v.astype(ft) for k, v in
                                           plan.init_arrays(x0, init).items()})
    x_forward = np.empty((T + 1, len(x0)))
    x_forward[0] = state[0]
    for t in range(T):
        g = np.asarray(gradx(state[0].astype(np.float64), m, t), dtype=np.float64).astype(ft)
        state = plan.step(state, g, coeffs[t])
        x_forward[t + 1] = state[0]

    value, dx, dm = f(state[0].astype(np.float64), m)
    x_recovered = np.empty_like(x_forward)
    x_recovered[T] = state[0]
    walk = {"state": state}

    def naive_steps():
        for t in range(T - 1, -1, -1):
            post = [a.astype(np.float64) for a in walk["state"][1:n]]
            walk["state"] = plan.unstep_x(walk["state"], coeffs[t])
            xf = walk["state"][0].astype(np.float64)
            g, vjp = hvp(xf, m, t)
            walk["state"] = plan.unstep_rest(walk["state"], g.astype(ft), coeffs[t])
            x_recovered[t] = xf
            yield t, post, [a.astype(np.float64) for a in walk["state"][1:n]], g, vjp

    with np.errstate(all="ignore"):   # overflow to inf/NaN is part of what we show
        adj, dm = reverse_accumulate(plan, naive_steps(), dx, dm, check=False)
        err = np.max(np.abs(x_recovered[0] - x_forward[0]))
    d_opt, d_init = plan.gradients(adj)
    return NaiveHypergradResult(
        meta_loss=value, d_x0=adj["x"], d_v0=d_init.get("v"), d_alphas=d_opt.alphas,
        d_betas=getattr(d_opt, "betas", None), d_meta=dm if meta is None else unflatten(dm),
        x_forward=x_forward, x_recovered=x_recovered,
        x0_error=float(err) if np.isfinite(err) else float("inf"), dtype=ft, T=T,
        d_optimizer=d_opt)
