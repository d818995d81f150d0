"""Momentum SGD, in plain floats and in exactly reversible fixed point.

The dynamics (x uses the NEW velocity, as in the paper's corrected Algorithm 1):

    v_{t+1} = beta_t v_t - (1 - beta_t) g_t,    g_t = grad_x L(x_t, meta, t)
    x_{t+1} = x_t + alpha_t v_{t+1}

In PyTorch terms: SGD(momentum=beta, lr=alpha * (1 - beta)).
``exact_step``/``exact_unstep_x``/``exact_unstep_v`` are the building blocks of
the reverse pass; each is a few lines because ExactArray does the hard part.
"""
from dataclasses import dataclass

import numpy as np

from .autodiff import check_finite, flat_meta, train_gradient
from .schedules import Schedule


def exact_step(X, V, g, alpha, n, d):
    """One exact forward step on ExactArrays X, V given the gradient g at x_t:
    v <- (n/d) v - (1 - n/d) g, then x <- x + alpha v."""
    V.mul(n, d)
    V.sub(g, 1 - n / d)
    X.add(V, alpha)


def exact_unstep_x(X, V, alpha):
    """Recover x_t from x_{t+1} and v_{t+1}: subtract the very same increment.

    ``V`` is the ExactArray or its values as floats (``V.val``: the same increment)."""
    X.sub(V, alpha)


def exact_unstep_v(V, g, n, d):
    """Recover v_t from v_{t+1} and g_t (recomputed at the recovered x_t)."""
    V.add(g, 1 - n / d)
    V.div(n, d)


@dataclass
class TrainResult:
    x_final: np.ndarray
    v_final: np.ndarray
    T: int


def _as_vector(x, name, size=None):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a flat 1-D parameter vector, got shape {a.shape}; "
                         "use autograd.misc.flatten (or revlearn.models) to flatten parameters")
    if size is not None and a.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) like x0, got {a.shape}")
    return a.copy()


def train(train_loss, x0, alphas, betas, meta=None, *, v0=None, groups=None,
          denominator_bits=None, callback=None):
    """Plain float momentum SGD: the baseline every exact result is compared with.

    Same arguments as ``hypergrad``.  With ``denominator_bits=None`` the betas
    are used as given; pass 16 to use the same fractions n/d as exact training.
    ``callback(t, x, v)`` is called after each step.  Returns ``x_final``,
    ``v_final``.
    """
    x = _as_vector(x0, "x0")
    v = np.zeros_like(x) if v0 is None else _as_vector(v0, "v0", len(x))
    sched = Schedule(alphas, betas, len(x), groups, denominator_bits)
    m, unflatten = flat_meta(meta)
    gradx = train_gradient(train_loss, unflatten)
    for t in range(sched.T):
        g = gradx(x, m, t)
        check_finite(g, t)
        b = sched.beta(t)
        v = b * v - (1 - b) * g
        x = x + sched.alpha(t) * v
        if callback is not None:
            callback(t, x, v)
    return TrainResult(x, v, sched.T)
