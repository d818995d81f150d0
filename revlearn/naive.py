"""Naive reversal: run momentum SGD backwards in ordinary floating point.

This is the approach that fails, kept for contrast.  Undoing ``v *= beta``
means dividing by beta, which multiplies every rounding error by 1/beta, so
the reversal loses about log2(1/beta) bits per step and the recovered weights
are garbage after roughly p / log2(1/beta) steps (p = mantissa bits).
``precision`` may be "float16", "float32", "float64" or an integer number of
mantissa bits, computed with mpmath at exactly that precision.
"""
from dataclasses import dataclass

import mpmath
import numpy as np

from .autodiff import check_finite, train_gradient
from .momentum import Momentum
from .training import prepare

FLOAT_TYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
MANTISSA_BITS = {"float16": 11, "float32": 24, "float64": 53}


@dataclass
class NaiveReversal:
    """Per-iteration errors of a naive reversal; index t means x_t.

    ``errors[t]`` is max_i |x_t recovered - x_t from the forward pass|;
    ``weight_scale[t]`` is max_i |x_t| on the forward pass.  The reverse pass
    starts at t = T (error 0) and walks down to t = 0.
    """
    errors: np.ndarray
    weight_scale: np.ndarray
    x_forward: np.ndarray
    x_recovered: np.ndarray
    precision: object
    mantissa_bits: int

    def steps_to_failure(self, rel=0.1):
        """Reverse steps taken when the error first exceeds ``rel`` times the
        weights' size, or None if the reversal never got that bad."""
        T = len(self.errors) - 1
        bad = self.errors > rel * np.maximum(self.weight_scale, np.finfo(float).tiny)
        for k in range(T + 1):
            if bad[T - k]:
                return k
        return None


class _MpArith:
    """Elementwise arithmetic on object arrays of mpmath numbers at ``prec`` bits."""

    def __init__(self, prec):
        self.ctx = mpmath.MPContext()
        self.ctx.prec = int(prec)
        self._mpf = np.frompyfunc(self.ctx.mpf, 1, 1)

    def cast(self, a):
        a = np.asarray(a, dtype=np.float64)
        return self.ctx.mpf(float(a)) if a.ndim == 0 else self._mpf(a).astype(object)

    @staticmethod
    def to_float(a):
        return np.array([float(ai) for ai in np.ravel(a)])


def reverse_naive(train_loss, x0, alphas=None, betas=None, meta=None, *, optimizer=None,
                  precision="float64", v0=None, groups=None):
    """Train forward, then reverse in plain arithmetic; return a ``NaiveReversal``.

    Both passes use the same arithmetic (so any mismatch is the reversal's
    fault); gradients come from autograd in float64 and are rounded to the
    working precision.  Decays are used as given.  ``optimizer=`` takes
    ``revlearn.Adam(...)`` (or ``Momentum``) instead of ``alphas, betas``;
    mpmath precisions (an int) are for momentum only.
    """
    opt, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups, None,
                                                meta, v0)
    gradx = train_gradient(train_loss, unflatten)
    if isinstance(precision, str):
        if precision not in FLOAT_TYPES:
            raise ValueError(f"precision must be one of {list(FLOAT_TYPES)} or an int, got {precision!r}")
        dt = FLOAT_TYPES[precision]
        cast, to_float, bits = (lambda a: np.asarray(a, dtype=dt)), (lambda a: a.astype(float)), \
            MANTISSA_BITS[precision]
    elif isinstance(precision, (int, np.integer)) and 2 <= precision <= 4096:
        if not isinstance(opt, Momentum):
            raise ValueError(f"precision as a number of mantissa bits (mpmath) works for momentum "
                             f"SGD only; for {type(opt).__name__} use 'float16', 'float32' or "
                             "'float64'")
        mp = _MpArith(precision)
        cast, to_float, bits = mp.cast, mp.to_float, int(precision)
    else:
        raise ValueError(f"precision must be 'float16', 'float32', 'float64' or an int number of "
                         f"mantissa bits in 2..4096, got {precision!r}")

    T = plan.T
    xs = np.empty((T + 1, len(x0)))
    start = {k: cast(v) for k, v in plan.init_arrays(x0, init).items()}
    state = plan.float_init(cast(x0), start)
    xs[0] = to_float(state[0])
    # the step's coefficients, rounded once to the working precision
    coeffs = [tuple(cast(c) for c in plan.coefficients(t)) for t in range(T)]
    for t in range(T):
        g = np.asarray(gradx(to_float(state[0]), m, t), dtype=np.float64)
        check_finite(g, t)
        state = plan.step(state, cast(g), coeffs[t])
        xs[t + 1] = to_float(state[0])

    recovered = np.empty_like(xs)
    recovered[T] = xs[T]
    with np.errstate(all="ignore"):  # the point is to watch this blow up
        for t in range(T - 1, -1, -1):
            state = plan.unstep_x(state, coeffs[t])
            xf = to_float(state[0])
            g = np.asarray(gradx(xf, m, t), dtype=np.float64) if np.isfinite(xf).all() \
                else np.full_like(xf, np.nan)
            state = plan.unstep_rest(state, cast(g), coeffs[t])
            recovered[t] = xf
        errors = np.max(np.abs(recovered - xs), axis=1)
    errors[~np.isfinite(errors)] = np.inf
    return NaiveReversal(errors=errors, weight_scale=np.max(np.abs(xs), axis=1), x_forward=xs,
                         x_recovered=recovered, precision=precision, mantissa_bits=bits)
