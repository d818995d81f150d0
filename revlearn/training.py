"""The training loops every optimizer shares: plain float training and the exact forward pass.

``train`` runs an optimizer in ordinary float64 (the baseline every exact
result is compared with).  ``train_exact`` runs it in fixed point, storing only
what reversal needs (the information buffer), and remembers a fingerprint of
every gradient so the reverse pass can prove it saw the same ones.  Both take
the schedules either as ``alphas, betas`` (momentum SGD, the paper's setting)
or as ``optimizer=`` (``Momentum``, ``Adam``, ...; see ``revlearn.optimizer``).
"""
import warnings
from dataclasses import dataclass

import numpy as np

from .autodiff import check_finite, derivatives, one_blas_thread_with_jax
from .buffer import BigIntBuffer, InfoBuffer
from .errors import CoarseGridWarning
from .fixedpoint import DEFAULT_FRAC_BITS, ExactArray, check_frac_bits, value_range
from .momentum import Momentum
from .progress import Progress
from .rational import DEFAULT_DENOMINATOR_BITS, check_denominator_bits
from .schedules import real_array

# Warn when more than this share of the training increments was lost to rounding to the
# fixed-point grid: the exact run then follows noticeably different dynamics than floats.
COARSE_GRID_SHARE = 1e-4


def as_vector(x, name, size=None):
    """A flat float64 copy of ``x``, or a clear error naming ``name``."""
    a = real_array(name, x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a flat 1-D parameter vector, got shape {a.shape}; "
                         "use autograd.misc.flatten (or revlearn.models) to flatten parameters")
    if size is not None and a.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) like x0, got {a.shape}")
    return a.copy()


_as_vector = as_vector   # the old private name


def resolve_optimizer(alphas, betas, optimizer):
    """The optimizer from either ``alphas, betas`` (momentum SGD) or ``optimizer=``."""
    if optimizer is None:
        if alphas is None or betas is None:
            raise TypeError("give the schedules as alphas, betas (momentum SGD) or as "
                            "optimizer=revlearn.Momentum(...) / revlearn.Adam(...)")
        return Momentum(alphas, betas)
    if alphas is not None or betas is not None:
        raise TypeError("give either alphas, betas or optimizer=, not both: the optimizer "
                        "holds its own schedules")
    if not hasattr(optimizer, "bind"):
        raise TypeError(f"optimizer must be a revlearn optimizer such as revlearn.Momentum or "
                        f"revlearn.Adam, got {type(optimizer).__name__}")
    return optimizer


def prepare(x0, alphas, betas, optimizer, groups, denominator_bits, meta, v0=None,
            backend="autograd"):
    """Check the common arguments; returns (optimizer, plan, x0, init, meta_flat, unflatten)."""
    x0 = as_vector(x0, "x0")
    if not x0.size:
        raise ValueError("x0 is empty: there are no parameters to train")
    opt = resolve_optimizer(alphas, betas, optimizer)
    plan = opt.bind(len(x0), groups, denominator_bits)
    init = {"v": None if v0 is None else as_vector(v0, "v0", len(x0))}
    plan.check_init(init, len(x0))
    m, unflatten = derivatives(backend).flat_meta(meta)
    return opt, plan, x0, init, m, unflatten


@dataclass
class TrainResult:
    """Plain float training: the final weights and the optimizer's final state."""
    x_final: np.ndarray
    state: dict
    T: int

    @property
    def v_final(self):
        return self.state["v"]


@one_blas_thread_with_jax
def train(train_loss, x0, alphas=None, betas=None, meta=None, *, optimizer=None, v0=None,
          groups=None, denominator_bits=None, callback=None, backend="autograd"):
    """Plain float training: the baseline every exact result is compared with.

    Same arguments as ``hypergrad`` (``backend="jax"`` for losses in jax.numpy).  With
    ``denominator_bits=None`` decays are
    used as given; pass 16 to use the same fractions n/d as exact training.
    ``callback(t, x, *state)`` is called after each step (``callback(t, x, v)``
    for momentum).  Returns ``x_final`` and the final ``state`` (``v_final``).
    """
    opt, plan, x, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                               denominator_bits, meta, v0, backend)
    gradx = derivatives(backend).train_gradient(train_loss, unflatten)
    state = plan.float_init(x, init)
    for t in range(plan.T):
        g = gradx(state[0], m, t)
        check_finite(g, t)
        state = plan.float_step(state, g, t)
        if callback is not None:
            callback(t, *state)
    return TrainResult(state[0], dict(zip(plan.names[1:], state[1:])), plan.T)


def fingerprint(g):
    """A wrapping sum of the raw float bits of g: changes if any entry changes."""
    return np.sum(g.view(np.uint64), dtype=np.uint64)


def _state_print(S):
    return [np.sum(E.k.view(np.uint64), dtype=np.uint64) for E in S]


@dataclass
class ExactRun:
    """The state after exact training: what the reverse pass starts from."""
    state: list             # ExactArrays: x_T first, then the optimizer's other states
    init_k: list            # the integers of the initial state, to check the reversal
    fingerprints: np.ndarray
    plan: object
    meta_flat: np.ndarray
    rounding_share: float   # share of the training increments lost to the grid (sampled)

    @property
    def X(self):
        return self.state[0]

    @property
    def V(self):
        return self.state[1]

    @property
    def x_final(self):
        return self.state[0].val

    @property
    def buffer_bits(self):
        return float(sum(E.buffer.nbits for E in self.state[1:]))

    @property
    def schedule(self):
        return self.plan


def _check_buffer_class(buffer):
    if buffer not in (InfoBuffer, BigIntBuffer) and not (
            isinstance(buffer, type) and hasattr(buffer, "exchange")):
        raise TypeError(f"buffer must be a buffer class (revlearn.InfoBuffer or "
                        f"revlearn.BigIntBuffer), not {buffer!r}: revlearn makes one buffer per "
                        "state array itself")


@one_blas_thread_with_jax
def train_exact(train_loss, x0, alphas=None, betas=None, meta=None, *, optimizer=None, v0=None,
                groups=None, frac_bits=DEFAULT_FRAC_BITS,
                denominator_bits=DEFAULT_DENOMINATOR_BITS, buffer=InfoBuffer, callback=None,
                progress=False, backend="autograd"):
    """Training in exact fixed point, keeping only what reversal needs.

    Same arguments as ``hypergrad``.  Returns an ``ExactRun`` (``x_final``,
    ``buffer_bits``, and the state the reverse pass starts from).  Warns with
    ``CoarseGridWarning`` if the fixed-point grid is too coarse for the step.
    """
    frac_bits = check_frac_bits(frac_bits)
    check_denominator_bits(denominator_bits)   # exact training needs the fractions n/d
    _check_buffer_class(buffer)
    opt, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                                denominator_bits, meta, v0, backend)
    gradx = derivatives(backend).train_gradient(train_loss, unflatten)
    start = plan.float_init(x0, init)
    S = [ExactArray(a, f, buffer=buffer(len(x0)), name=name)
         for a, f, name in zip(start, plan.formats(frac_bits), plan.names)]
    for E in S:
        E.track_rounding = True
    run = ExactRun(S, [E.k.copy() for E in S], np.empty(plan.T, dtype=np.uint64), plan, m, 0.0)
    for t in (Progress(range(plan.T), "forward", leave=False) if progress else range(plan.T)):
        g = gradx(S[0].val, m, t)
        run.fingerprints[t] = fingerprint(g)
        try:
            plan.exact_step(S, g, t)
        except OverflowError as e:
            raise OverflowError(f"at training iteration {t}: {e}") from None
        except FloatingPointError:      # rounding g to the grid found NaN/inf: say where
            check_finite(g, t)
            raise
        if callback is not None:
            before = _state_print(S)
            callback(t, *S)
            if _state_print(S) != before:
                raise ValueError(f"the callback changed the exact training state at iteration "
                                 f"{t}; a callback may only look (copy X.k to keep it): "
                                 "changing it would make the reversal wrong")
    lost = sum(E.rounding[0] for E in S)
    total = sum(E.rounding[1] for E in S)
    run.rounding_share = float(lost / total) if total > 0 else 0.0
    for E in S:
        E.track_rounding = False
    coarse = getattr(plan, "precision_warning", lambda: None)()
    if coarse:
        warnings.warn(CoarseGridWarning(coarse), stacklevel=3)
    if run.rounding_share > COARSE_GRID_SHARE:
        if frac_bits < DEFAULT_FRAC_BITS:
            fix = (f"Use more fractional bits (frac_bits={DEFAULT_FRAC_BITS}, the default, "
                   f"keeps values below {value_range(DEFAULT_FRAC_BITS):g})")
        else:
            fix = ("The steps are tiny even on this fine grid (step sizes near 0?): use larger "
                   "step sizes, or rescale the loss so that gradients are of order one")
        warnings.warn(CoarseGridWarning(
            f"the fixed-point grid is too coarse for these steps: {run.rounding_share:.2%} of "
            f"the training increments were lost to rounding to multiples of 2**-{frac_bits}, "
            "so the exact run follows different dynamics than float training, and its exact "
            f"hypergradients are those of the different dynamics. {fix}."), stacklevel=3)
    return run
