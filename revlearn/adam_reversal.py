"""Adam run backwards: how naive float reversal fails, and what exact reversal costs.

Undoing one Adam step (see ``revlearn.adam`` for the dynamics) in floats:

    x_t = x_{t+1} + alpha_t u(m_{t+1}, s_{t+1})      # the same increment: fine
    g_t = grad L(x_t)
    m_t = (m_{t+1} - (1 - beta1) g_t) / beta1        # multiplies m's error by 1/beta1
    s_t = (s_{t+1} - (1 - beta2) g_t**2) / beta2     # multiplies s's error by 1/beta2

Each division amplifies the rounding error already in that average, so the
two errors grow like (1/beta1)**k and (1/beta2)**k after k reverse steps, and
both flow into x through the step u.  The faster of the two wins: naive
reversal loses max(log2(1/beta1), log2(1/beta2)) bits per step and is garbage
after about p / max(...) steps (p = 53 for float64).  Exact reversal instead
has to keep the bits of *both* averages: its buffer grows by the sum,
log2(d/n1) + log2(d/n2) bits per parameter per step.  The error is set by the
worse average, the memory by both.  (Plus a constant: when the grid of a
parameter's s coarsens because s has grown, the dropped low bits go into s's
buffer once; ``ExactWalk.dropped_bits`` counts them, and ``bits_per_step(...,
away_from_grid_moves=True)`` measures the slope without those jumps.)

This holds in Adam's usual regime, beta1 <= beta2.  With beta2 < beta1 the
second moment forgets faster than the mean, the step m / sqrt(s) is no longer
of order one where gradients fade, training itself turns erratic, and naive
reversal fails sooner than the law says: the law is a best case.
"""
import math
from dataclasses import dataclass

import numpy as np

from .autodiff import flat_meta, train_gradient
from .growth import theoretical_bits as momentum_bits
from .hypergrad import exact_reversal
from .rational import DEFAULT_DENOMINATOR_BITS
from .training import train_exact
from .widgets.reversal import predicted_failure_step as momentum_failure_step

FLOAT_STATE_BITS = 3 * 64   # storing x, m and s as float64 at every step instead


def _decay(name, beta):
    b = float(beta)
    if not (np.isfinite(b) and 0 < b < 1):
        raise ValueError(f"{name} must lie in (0, 1) (Adam's decays), got {beta!r}")
    return b


def loss_rate(beta1, beta2):
    """Bits per reverse step that naive float reversal of Adam loses: the larger of
    log2(1/beta1) and log2(1/beta2) (the faster-forgetting average sets the pace)."""
    b1, b2 = _decay("beta1", beta1), _decay("beta2", beta2)
    return max(math.log2(1 / b1), math.log2(1 / b2))


def predicted_failure_step(beta1, beta2, mantissa_bits):
    """Reverse steps until naive reversal has lost all ``mantissa_bits``:
    p / max(log2(1/beta1), log2(1/beta2)); momentum's law with the smaller beta."""
    b1, b2 = _decay("beta1", beta1), _decay("beta2", beta2)
    return momentum_failure_step(min(b1, b2), mantissa_bits)


def theoretical_bits(beta1, beta2, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Bits per parameter per step exact reversal stores, ``(for m, for s)``:
    log2(d/n1) and log2(d/n2) for the fractions n/d that exact training uses."""
    return (momentum_bits(_decay("beta1", beta1), denominator_bits)[1],
            momentum_bits(_decay("beta2", beta2), denominator_bits)[1])


def error_slope(reversal, *, ceiling=0.01, skip=5):
    """The measured growth rate of a ``NaiveReversal``'s error, in bits per reverse step.

    A straight-line fit of log2(error) against the reverse step k, over the
    steps after the first ``skip`` (where single roundings dominate) and before
    the error reaches ``ceiling`` times the weights (where it saturates).
    Returns NaN if fewer than five steps qualify.
    """
    err = reversal.errors[::-1].astype(float)
    scale = reversal.weight_scale[::-1]
    k = np.arange(len(err))
    ok = (err > 0) & np.isfinite(err) & (k > skip)
    above = np.flatnonzero(err >= ceiling * scale)
    if above.size:
        ok &= k < above[0]
    if ok.sum() < 5:
        return float("nan")
    return float(np.polyfit(k[ok], np.log2(err[ok]), 1)[0])


@dataclass
class ExactWalk:
    """Exact Adam training and its reversal, compared with the forward pass at every step.

    ``mismatches[t]`` counts the integers of (x_t, m_t, s_t) that the reverse
    pass recovered differently from the forward pass (0 everywhere when the
    reversal is exact); ``errors[t]`` = max |recovered x_t - forward x_t|.
    ``bits[name][t]`` are the bits in that state's buffer after forward step t
    (t = 0 is the start), per parameter.  ``frac_bits[name][t]`` are the fractional
    bits of every parameter's grid for that state after forward step t: constant for
    x and m, moving for Adam's s (see ``grid_moves``).  ``final[name]``: that state's
    values after training (``x_final``: the weights).  ``buffers_empty``: after the walk.
    """
    mismatches: np.ndarray
    errors: np.ndarray
    bits: dict
    frac_bits: dict
    final: dict
    buffers_empty: bool
    n_params: int
    T: int

    @property
    def x_final(self):
        """The weights after training."""
        return self.final["x"]

    @property
    def exact(self):
        """Every state recovered bit for bit and the buffers back to empty."""
        return bool(self.buffers_empty and not self.mismatches.any())

    def bits_per_step(self, name=None, start=None, *, away_from_grid_moves=False):
        """Measured growth of the buffer (one state's, or all of them) per parameter per
        step: a straight-line fit over steps ``start`` .. T (default: the second half,
        past the constant the buffers start with).

        With ``away_from_grid_moves``, the steps at which a grid of the state (of any
        state, for the total) moved are cut out and the pieces joined before the fit: a
        coarser grid for Adam's s pushes its dropped low bits into s's buffer, a jump of
        a few bits once (``dropped_bits``), not a slope; this measures the slope alone.
        """
        names = list(self.bits) if name is None else [name]
        total = sum(self.bits[n] for n in names)
        start = self.T // 2 if start is None else int(start)
        t = np.arange(start, self.T + 1)
        if len(t) < 2:
            raise ValueError(f"start must leave at least two steps of the {self.T}, got {start}")
        if not away_from_grid_moves:
            return float(np.polyfit(t, total[t], 1)[0])
        moved = np.zeros(self.T + 1, dtype=bool)      # moved[t]: a grid moved in step t - 1
        for n in names:
            moved[1:] |= (np.diff(self.frac_bits[n], axis=0) != 0).any(axis=1)
        steps = t[1:][~moved[t[1:]]]                   # increments total[t] - total[t - 1]
        if len(steps) < 2:
            raise ValueError(f"fewer than two steps from {start} to {self.T} without grid moves")
        joined = np.concatenate([[0.0], np.cumsum(total[steps] - total[steps - 1])])
        return float(np.polyfit(np.arange(len(joined)), joined, 1)[0])

    def dropped_bits(self, name="s"):
        """Bits per parameter that coarser grids of state ``name`` dropped into its buffer
        over the whole run: the sum of every net coarsening (in bits), divided by the
        number of parameters.  (Finer grids drop nothing: the integers shift left.)"""
        change = np.diff(self.frac_bits[name].astype(np.int64), axis=0)
        return float(-change[change < 0].sum() / self.n_params)

    def grid_moves(self, name="s"):
        """How often the grid of state ``name`` moved: ``(finer, coarser)``, two length-T
        arrays counting the parameters whose grid got finer or coarser at each step
        (the net change over the step: a parameter refined and coarsened within one
        step counts once, by the sign of the sum, or not at all if they cancel)."""
        change = np.diff(self.frac_bits[name].astype(np.int64), axis=0)
        return (change > 0).sum(axis=1), (change < 0).sum(axis=1)


def exact_walk(train_loss, x0, optimizer, meta=None, *, groups=None, **train_kwargs):
    """Train exactly (``revlearn.train_exact``), run training backwards with the
    engine's own reverse steps (``revlearn.hypergrad.exact_reversal``), and compare
    every recovered state with the one the forward pass produced.

    Keeps a copy of every forward state, which the engine itself never does:
    this is a check for small problems, not a way to train.  Returns an ``ExactWalk``.
    """
    names_bits, grids = {}, {}
    states = []

    def remember(t, *S):
        states.append([E.k.copy() for E in S])
        for E in S:
            grids.setdefault(E.name, []).append(np.broadcast_to(E.frac_bits, len(E.k)).copy())
        for E in S[1:]:
            names_bits.setdefault(E.name, []).append(E.buffer.nbits)

    run = train_exact(train_loss, x0, meta=meta, optimizer=optimizer, groups=groups,
                      callback=remember, **train_kwargs)
    T, n = run.plan.T, len(run.state[0])
    states.insert(0, run.init_k)
    _, unflatten = flat_meta(meta)
    gradx = train_gradient(train_loss, unflatten)
    # exact_reversal asks for (g, Hessian-vector product); only g is needed to walk back
    mismatches, errors = np.zeros(T + 1, dtype=np.int64), np.zeros(T + 1)
    grid = 2.0 ** -run.state[0].frac_bits      # x's fixed-point grid spacing
    for t, *_ in exact_reversal(run, lambda x, m, t: (np.asarray(gradx(x, m, t)), None)):
        mismatches[t] = sum(int(np.sum(E.k != k)) for E, k in zip(run.state, states[t]))
        errors[t] = float(np.max(np.abs(run.state[0].k - states[t][0]))) * grid
    bits = {name: np.concatenate([[0.0], np.array(b, dtype=float) / n])
            for name, b in names_bits.items()}
    # walked back, every grid is where it started (each move undone at its own step)
    frac_bits = {E.name: np.array([np.broadcast_to(E.frac_bits, n), *grids[E.name]],
                                  dtype=np.int16) for E in run.state}
    final = {E.name: k * 2.0 ** -frac_bits[E.name][T].astype(np.float64)
             for E, k in zip(run.state, states[T])}
    return ExactWalk(mismatches=mismatches, errors=errors, bits=bits, frac_bits=frac_bits,
                     final=final, buffers_empty=all(E.buffer.is_empty() for E in run.state),
                     n_params=n, T=T)
