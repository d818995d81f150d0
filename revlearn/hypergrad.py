"""Exact hypergradients by running momentum SGD backwards.

``hypergrad`` trains forward in fixed point (storing only the information that
multiplying by beta destroys), evaluates the meta-loss, then walks training
backwards, recovering every x_t, v_t and g_t bit for bit while accumulating the
gradient of the meta-loss with respect to every hyperparameter.
``hypergrad_unrolled`` gets the same numbers by letting autograd differentiate
the whole unrolled loop (which stores everything): the check and the memory
baseline.
"""
from dataclasses import dataclass

import numpy as np
from autograd import value_and_grad
from autograd.tracer import getval

from .autodiff import (check_finite, flat_meta, meta_value_and_grad, train_gradient,
                       train_hvp, _explained)
from .buffer import InfoBuffer
from .errors import ReversalError
from .fixedpoint import DEFAULT_FRAC_BITS, ExactArray
from .momentum import _as_vector, exact_step, exact_unstep_v, exact_unstep_x
from .rational import DEFAULT_DENOMINATOR_BITS
from .schedules import Schedule


@dataclass
class HypergradResult:
    """What ``hypergrad`` returns.  Gradients have the shapes of their inputs."""
    x_final: np.ndarray
    v_final: np.ndarray
    meta_loss: float
    d_x0: np.ndarray
    d_v0: np.ndarray
    d_alphas: np.ndarray
    d_betas: np.ndarray
    d_meta: object
    buffer_bits: float      # bits in the information buffer after the forward pass
    exact: bool             # x_0 and v_0 recovered bit for bit, buffer back to empty
    T: int

    @property
    def bits_per_param_per_step(self):
        return self.buffer_bits / (len(self.x_final) * self.T)


def _fingerprint(g):
    # A wrapping sum of the raw float bits: changes if any entry changes.
    return np.sum(g.view(np.uint64), dtype=np.uint64)


def _prepare(x0, v0, alphas, betas, groups, denominator_bits, meta):
    x0 = _as_vector(x0, "x0")
    v0 = np.zeros_like(x0) if v0 is None else _as_vector(v0, "v0", len(x0))
    sched = Schedule(alphas, betas, len(x0), groups, denominator_bits)
    m, unflatten = flat_meta(meta)
    return x0, v0, sched, m, unflatten


@dataclass
class ExactRun:
    """The state after exact training: what the reverse pass starts from."""
    X: ExactArray           # x_T (fixed point)
    V: ExactArray           # v_T, with the information buffer in V.buffer
    x0_k: np.ndarray        # the integers of x_0 and v_0, to check the reversal
    v0_k: np.ndarray
    fingerprints: np.ndarray
    schedule: Schedule
    meta_flat: np.ndarray

    @property
    def x_final(self):
        return self.X.val

    @property
    def buffer_bits(self):
        return self.V.buffer.nbits


def train_exact(train_loss, x0, alphas, betas, meta=None, *, v0=None, groups=None,
                frac_bits=DEFAULT_FRAC_BITS, denominator_bits=DEFAULT_DENOMINATOR_BITS,
                buffer=InfoBuffer, callback=None, progress=False):
    """Momentum SGD in exact fixed point, keeping only what reversal needs.

    Same arguments as ``hypergrad``.  Returns an ``ExactRun`` (``x_final``,
    ``buffer_bits``, and the state the reverse pass starts from).
    """
    x0, v0, sched, m, unflatten = _prepare(x0, v0, alphas, betas, groups, denominator_bits, meta)
    gradx = train_gradient(train_loss, unflatten)
    X = ExactArray(x0, frac_bits)
    V = ExactArray(v0, frac_bits, buffer=buffer(len(x0)))
    run = ExactRun(X, V, X.k.copy(), V.k.copy(), np.empty(sched.T, dtype=np.uint64), sched, m)
    for t in _steps(range(sched.T), progress, "forward"):
        g = gradx(X.val, m, t)
        run.fingerprints[t] = _fingerprint(g)
        try:
            exact_step(X, V, g, sched.alpha(t), sched.numerator(t), sched.d)
        except OverflowError as e:
            raise OverflowError(f"at training iteration {t}: {e}") from None
        except FloatingPointError:      # rounding g to the grid found NaN/inf: say where
            check_finite(g, t)
            raise
        if callback is not None:
            callback(t, X, V)
    return run


def hypergrad(train_loss, meta_loss, x0, alphas, betas, meta=None, *, v0=None, groups=None,
              frac_bits=DEFAULT_FRAC_BITS, denominator_bits=DEFAULT_DENOMINATOR_BITS,
              buffer=InfoBuffer, callback=None, progress=False):
    """Exact gradient of ``meta_loss(x_T, meta)`` with respect to every hyperparameter.

    Runs T = len(alphas) steps of momentum SGD on ``train_loss(x, meta, t)``
    from ``x0`` (velocity ``v0``, default 0) in exact fixed point, then runs
    them backwards.  ``alphas``/``betas`` are length-T, or T x G with
    ``groups`` (one group id per parameter); betas are used as the fractions
    n/d with d = 2**denominator_bits.  ``buffer`` is the buffer class
    (``InfoBuffer`` or ``BigIntBuffer``); ``callback(t, X, V)`` sees the
    ExactArrays after each forward step.  Returns a ``HypergradResult``; raises
    (never returns a wrong gradient) if the reversal is not bit-exact.
    """
    run = train_exact(train_loss, x0, alphas, betas, meta, v0=v0, groups=groups,
                      frac_bits=frac_bits, denominator_bits=denominator_bits, buffer=buffer,
                      callback=callback, progress=progress)
    _, unflatten = flat_meta(meta)
    hvp = train_hvp(train_gradient(train_loss, unflatten))
    f = meta_value_and_grad(meta_loss, unflatten)
    X, V, sched, m, prints, d, T = run.X, run.V, run.schedule, run.meta_flat, run.fingerprints, \
        run.schedule.d, run.schedule.T
    buffer_bits = V.buffer.nbits
    x_final, v_final = X.val, V.val

    value, dx, dm = f(x_final, m)
    check_finite(dx, T, "gradient of meta_loss")
    dv = np.zeros_like(dx)
    d_alphas = np.zeros_like(sched.alphas)
    d_betas = np.zeros_like(sched.alphas)
    to_float = 2.0 ** -X.frac_bits
    v = np.empty_like(dx)            # scratch space, reused every step: v_t as floats, ...
    w = np.empty_like(dx)            # ... and products
    for t in _steps(range(T - 1, -1, -1), progress, "reverse"):
        a, b, n = sched.alpha(t), sched.beta(t), sched.numerator(t)
        np.multiply(V.k, to_float, out=v)                   # v_{t+1} as floats (exactly)
        d_alphas[t] = sched.reduce_dot(dx, v)
        exact_unstep_x(X, v, a)          # the same increment as X.add(V, a) made
        g, vjp = hvp(X.val, m, t)
        if _fingerprint(g) != prints[t]:
            raise ReversalError(
                f"train_loss gave a different gradient at iteration {t} in the reverse pass than "
                "in the forward pass, so training cannot be reversed exactly. The loss must be a "
                "pure function of (x, meta, t): make minibatches and any noise (dropout, data "
                "augmentation) depend only on t through a seeded generator, e.g. "
                "np.random.default_rng([seed, t]), never on a global random state.")
        exact_unstep_v(V, g, n, d)
        dv += np.multiply(dx, a, out=w)
        np.multiply(V.k, to_float, out=v)
        d_betas[t] = sched.reduce_dot(dv, np.add(v, g, out=v))       # dv . (v_t + g_t)
        # v_{t+1} = b v_t - (1 - b) g(x_t): the adjoint goes through (1 - b) * dv, which
        # matters when b differs per parameter (per-group momentum).
        hx, hm = vjp(np.multiply(dv, 1 - b, out=w))
        dx -= hx                     # (before w is reused: hx may be a view of it)
        dm = dm - hm
        dv *= b
    check_finite(dx, 0, "hypergradient")

    exact = bool((X.k == run.x0_k).all() and (V.k == run.v0_k).all() and V.buffer.is_empty())
    if not exact:
        raise ReversalError(
            "the reverse pass did not recover x_0 and v_0 bit for bit; the hypergradient would "
            "be wrong, so none is returned. This should not happen with a deterministic loss; "
            "please report it with the code that triggers it.")
    return HypergradResult(x_final=x_final, v_final=v_final, meta_loss=value, d_x0=dx, d_v0=dv,
                           d_alphas=d_alphas, d_betas=d_betas, d_meta=_unflat(dm, unflatten, meta),
                           buffer_bits=buffer_bits, exact=exact, T=T)


def _unflat(dm, unflatten, meta):
    return dm if meta is None else unflatten(dm)


def _steps(it, progress, desc):
    if not progress:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, leave=False)


def hypergrad_unrolled(train_loss, meta_loss, x0, alphas, betas, meta=None, *, v0=None,
                       groups=None, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The same hypergradient by autograd through the whole unrolled training loop.

    Float arithmetic, the same fractions n/d for beta as ``hypergrad``; autograd
    keeps every intermediate of all T steps, so memory grows linearly in T.
    Used as an independent check and as the memory baseline.
    """
    x0, v0, sched, m, unflatten = _prepare(x0, v0, alphas, betas, groups, denominator_bits, meta)
    gradx_raw = train_gradient(train_loss, unflatten)
    groups_ = sched.groups
    final = {}

    def run(params):
        x, v, alphas_, betas_, m_ = params
        for t in range(sched.T):
            a = alphas_[t] if groups_ is None else alphas_[t][groups_]
            b = betas_[t] if groups_ is None else betas_[t][groups_]
            g = gradx_raw(x, m_, t)
            v = b * v - (1 - b) * g
            x = x + a * v
        final["x"], final["v"] = getval(x), getval(v)
        return meta_loss(x, unflatten(m_))

    try:
        value, (d_x0, d_v0, d_alphas, d_betas, dm) = value_and_grad(run)(
            (x0, v0, sched.alphas, sched.betas, m))
    except (ValueError, AttributeError, NotImplementedError) as e:
        raise _explained(e, "the unrolled training loop", "reverse over the whole loop") from e
    check_finite(d_x0, 0, "unrolled hypergradient")
    return HypergradResult(x_final=final["x"], v_final=final["v"], meta_loss=float(value),
                           d_x0=d_x0, d_v0=d_v0, d_alphas=d_alphas, d_betas=d_betas,
                           d_meta=_unflat(dm, unflatten, meta), buffer_bits=0.0, exact=False,
                           T=sched.T)
