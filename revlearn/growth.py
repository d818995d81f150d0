"""How fast the information buffer grows, and what that saves.

Exact reversal stores only what multiplying the velocity by beta = n/d
destroys: the remainder of an integer division by d, less what the following
multiplication by n can hold, log2(d) - log2(n) = log2(d/n) bits per parameter
per step.  For beta = 0.9 that is 0.152 bits, where checkpointing the velocity
would store a whole float (32 or 64 bits) per parameter per step, and autograd's
tape stores even more.  This module measures all of that: bits per step
(against the theory), savings factors, the price of writing beta as n/d, the
memory of the unrolled autograd baseline, and the speed of the two buffers.
"""
import gc
import math
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from .buffer import InfoBuffer
from .fixedpoint import DEFAULT_FRAC_BITS, ExactArray
from .hypergrad import hypergrad, hypergrad_unrolled
from .memory import peak_memory
from .momentum import exact_step
from .training import train
from .rational import DEFAULT_DENOMINATOR_BITS, check_betas, to_rational

FLOAT_BITS = {"float16": 16, "float32": 32, "float64": 64}


def theoretical_bits(beta, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Bits per parameter per step, in theory: ``(log2(1/beta), log2(d/n))``.

    The first is for the nominal beta, the second for the fraction n/d that
    exact training really multiplies by.  The buffer grows by the second.
    """
    b = float(check_betas(beta))
    n, d = to_rational(b, denominator_bits)
    return math.log2(1 / b), math.log2(d / int(n))


def savings_factor(bits_per_step, float_bits=32):
    """How many times less memory than storing one float of ``float_bits`` bits
    per parameter per step (inf when nothing at all is stored, beta = 1)."""
    if isinstance(float_bits, str):
        float_bits = FLOAT_BITS[float_bits]
    if bits_per_step < 0:
        raise ValueError(f"bits_per_step must be >= 0, got {bits_per_step}")
    return math.inf if bits_per_step == 0 else float_bits / bits_per_step


@dataclass
class BitsTrace:
    """Bits stored in the buffer per parameter after each step (t = 1..T)."""
    bits_per_param: np.ndarray
    n: int
    d: int

    @property
    def T(self):
        return len(self.bits_per_param)

    @property
    def per_step(self):
        """Growth rate in bits per parameter per step: the least-squares slope of
        the trace (a slope, so a constant start-up offset does not count)."""
        if self.T < 2:
            return float(self.bits_per_param[-1])
        t = np.arange(1, self.T + 1)
        return float(np.polyfit(t, self.bits_per_param, 1)[0])

    @property
    def theory(self):
        """log2(d/n): the growth rate the entropy bound allows."""
        return math.log2(self.d / self.n)


def random_gradient(t, n_params, seed=0):
    """A stand-in gradient for iteration t: seeded standard-normal noise."""
    return np.random.default_rng([seed, t]).standard_normal(n_params)


def bits_trace(beta, T, n_params=100, *, alpha=0.1, denominator_bits=DEFAULT_DENOMINATOR_BITS,
               frac_bits=DEFAULT_FRAC_BITS, buffer=InfoBuffer, seed=0):
    """Exact momentum steps driven by random gradients; returns a ``BitsTrace``.

    The buffer does not care where the gradients come from -- only the
    multiplication by n/d stores anything -- so seeded noise is as good as a
    real network here, and fast.  ``buffer`` is the buffer class to use.
    """
    n, d = to_rational(beta, denominator_bits)
    n = int(n)
    rng = np.random.default_rng(seed)
    X = ExactArray(rng.standard_normal(n_params), frac_bits)
    V = ExactArray(np.zeros(n_params), frac_bits, buffer=buffer(n_params))
    bits = np.empty(int(T))
    for t in range(int(T)):
        exact_step(X, V, random_gradient(t, n_params, seed), alpha, n, d)
        bits[t] = V.buffer.nbits / n_params
    return BitsTrace(bits, n, d)


def bits_trace_training(train_loss, meta_loss, x0, alphas, betas, meta=None, **kwargs):
    """Run ``revlearn.hypergrad`` and record the buffer after every forward step.

    Returns ``(BitsTrace, HypergradResult)``; the trace's n and d are those of
    the first beta (the theory line is only meaningful for a constant beta).
    Extra keyword arguments go to ``hypergrad``.
    """
    P = len(x0)
    bits = []

    def record(t, X, V):
        bits.append(V.buffer.nbits / P)
    res = hypergrad(train_loss, meta_loss, x0, alphas, betas, meta, callback=record, **kwargs)
    n, d = to_rational(np.ravel(betas)[0], kwargs.get("denominator_bits",
                                                      DEFAULT_DENOMINATOR_BITS))
    return BitsTrace(np.array(bits), int(n), int(d)), res


def rational_table(beta, denominator_bits=range(1, 21)):
    """The fraction n/d for each number of denominator bits, and what it costs.

    Returns a dict of arrays: ``denominator_bits``, ``n``, ``d``, ``error``
    (|beta - n/d|), ``bits`` (log2(d/n), the buffer's growth per step) and
    ``nominal_bits`` (log2(1/beta)).  The error halves with every extra bit of
    d, while the bits per step stay close to log2(1/beta): a finer fraction
    costs no extra memory.
    """
    ks = np.array(list(denominator_bits), dtype=int)
    b = float(check_betas(beta))
    ns, ds = zip(*(to_rational(b, int(k)) for k in ks))
    n, d = np.array(ns, dtype=np.int64), np.array(ds, dtype=np.int64)
    return dict(denominator_bits=ks, n=n, d=d, error=np.abs(b - n / d), bits=np.log2(d / n),
                nominal_bits=np.full(len(ks), math.log2(1 / b)))


@dataclass
class RoundingEffect:
    """What training with n/d instead of beta changes."""
    beta: float
    beta_used: float            # n/d
    weight_change: float        # max |x_T(beta) - x_T(n/d)|
    loss_change: float          # meta_loss(x_T(beta)) - meta_loss(x_T(n/d))
    predicted_loss_change: float  # first order, from the exact hypergradient: sum_t dL/dbeta_t * (beta - n/d)


def rounding_effect(train_loss, meta_loss, x0, alphas, beta, meta=None, *,
                    denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Train with the nominal constant ``beta`` and with its fraction n/d, compare.

    The exact hypergradient with respect to beta (summed over iterations)
    predicts the change of the meta-loss to first order, so the cost of the
    approximation is |beta - n/d| times that derivative: tiny for d = 2**16.
    """
    T = len(alphas)
    betas = np.full(T, float(beta))
    nominal = train(train_loss, x0, alphas, betas, meta)
    used = train(train_loss, x0, alphas, betas, meta, denominator_bits=denominator_bits)
    res = hypergrad(train_loss, meta_loss, x0, alphas, betas, meta,
                    denominator_bits=denominator_bits)
    n, d = to_rational(beta, denominator_bits)
    b_used = int(n) / d
    return RoundingEffect(
        beta=float(beta), beta_used=b_used,
        weight_change=float(np.max(np.abs(nominal.x_final - used.x_final))),
        loss_change=float(meta_loss(nominal.x_final, meta) - meta_loss(used.x_final, meta)),
        predicted_loss_change=float(np.sum(res.d_betas) * (float(beta) - b_used)))


@dataclass
class MemoryComparison:
    """Peak memory (bytes) of one hypergradient, exact reversal against autograd's tape."""
    T: int
    exact_bytes: int
    unrolled_bytes: int
    buffer_bytes: float    # the information buffer alone (its bits / 8)

    @property
    def ratio(self):
        return self.unrolled_bytes / self.exact_bytes


def memory_comparison(train_loss, meta_loss, x0, alphas, betas, meta=None):
    """Measure peak memory of ``hypergrad`` and of ``hypergrad_unrolled`` on the
    same problem (with ``revlearn.memory.peak_memory``).  Numbers vary a little
    from run to run; the growth with T is the point."""
    res, exact_peak = peak_memory(hypergrad, train_loss, meta_loss, x0, alphas, betas, meta)
    _, unrolled_peak = peak_memory(hypergrad_unrolled, train_loss, meta_loss, x0, alphas, betas,
                                   meta)
    return MemoryComparison(len(alphas), exact_peak, unrolled_peak, res.buffer_bits / 8)


@dataclass
class MemoryLeftBehind:
    """What a call allocated (bytes, as ``tracemalloc`` counts them): its peak, what was
    still allocated right after it returned, and what remained after ``gc.collect()``."""
    peak: int
    held: int
    held_after_gc: int


def memory_left_behind(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` under ``tracemalloc``; return ``(result, MemoryLeftBehind)``.

    Why the three numbers: CPython does not hand every freed small object back to
    the allocator.  Freed tuples, for instance, wait on a *free list* (up to 2,000
    of each length in CPython 3.11) to be reused, and ``tracemalloc`` still counts
    them as allocated.  ``gc.collect()`` empties the free lists, so memory that is
    ``held`` after the call but gone after the collection was free-list memory, not
    data the computation kept.  (The result itself is still alive in both.)
    """
    gc.collect()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn(*args, **kwargs)
        held, peak = tracemalloc.get_traced_memory()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not already:
            tracemalloc.stop()
    return result, MemoryLeftBehind(peak - base, held - base, after - base)


def stored_float_bytes(n_params, T, float_bits=64):
    """Bytes needed to store one velocity vector per step as floats: the
    simplest way to make training reversible, and what the buffer replaces."""
    return n_params * T * float_bits / 8


@dataclass
class StepTimes:
    """Seconds per exact step (median over each block of steps), as the buffer fills."""
    steps: np.ndarray              # step count at the end of each block
    seconds_per_step: np.ndarray
    bits_per_param: np.ndarray     # stored at the end of each block


def time_steps(buffer, beta, T, n_params=300, *, block=100, denominator_bits=DEFAULT_DENOMINATOR_BITS,
               seed=0):
    """Time exact momentum steps with the given buffer class as the run grows.

    The big-integer buffer touches every digit of each parameter's integer on
    every push and pop, so its steps get slower as the integers grow; the fast
    ``InfoBuffer`` does the same small amount of work per step however much it holds.
    Timings depend on the machine and its load: compare, don't quote.
    """
    n, d = to_rational(beta, denominator_bits)
    n = int(n)
    rng = np.random.default_rng(seed)
    X = ExactArray(rng.standard_normal(n_params))
    V = ExactArray(np.zeros(n_params), buffer=buffer(n_params))
    grads = [random_gradient(t, n_params, seed) for t in range(block)]   # not part of the timing
    steps, secs, bits = [], [], []
    for start in range(0, int(T), block):
        count = min(block, int(T) - start)
        times = np.empty(count)
        for j in range(count):
            t0 = time.perf_counter()
            exact_step(X, V, grads[j], 0.1, n, d)
            times[j] = time.perf_counter() - t0
        secs.append(np.median(times))   # the median shrugs off moments when the machine is busy
        steps.append(start + count)
        bits.append(V.buffer.nbits / n_params)
    return StepTimes(np.array(steps), np.array(secs), np.array(bits))


def time_float_steps(beta, T, n_params=300, seed=0):
    """Seconds per plain float momentum step (the same update, no exactness), for scale."""
    rng = np.random.default_rng(seed)
    x, v = rng.standard_normal(n_params), np.zeros(n_params)
    grads = [random_gradient(t, n_params, seed) for t in range(min(int(T), 100))]
    times = np.empty(int(T))
    for t in range(int(T)):
        t0 = time.perf_counter()
        v = beta * v - (1 - beta) * grads[t % len(grads)]
        x = x + 0.1 * v
        times[t] = time.perf_counter() - t0
    return float(np.median(times))
