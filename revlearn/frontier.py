"""The fair comparison: memory and time of the three ways to get a hypergradient.

* **exact reversal** (``revlearn.hypergrad``): fixed-point training, run backwards bit for
  bit; it keeps the current state and the information buffer, which grows by
  log2(d/n) bits per parameter per step (the entropy bound).
* **checkpointing** (``revlearn.hypergrad_checkpointed``): float training that keeps the
  state every ``every`` steps (default ceil(sqrt(T))) and recomputes each segment during
  the reverse pass: about T / every + every states and one extra forward pass.
* **store-all** (``revlearn.hypergrad_unrolled``): autograd's tape through the whole
  unrolled loop, linear in T.

Both ``python -m revlearn.bench --only frontier`` and notebook 04 measure with the
functions here, on the same problem, so there is one implementation of the comparison.
Peak memory comes from ``revlearn.memory.peak_memory`` (tracemalloc), which slows every
allocation, so times are measured separately, untraced, each paired with float training
(``revlearn.train``) in the same process (``revlearn.bench.paired_ratios``: back to back,
the order alternating, so a drift in the machine's load cancels in the ratio).
"""
import math
from dataclasses import dataclass

import numpy as np

from .bench import paired_ratios, paper_problem
from .checkpoint import default_every, hypergrad_checkpointed
from .hypergrad import hypergrad, hypergrad_unrolled
from .memory import peak_memory
from .progress import Progress
from .training import train

METHODS = {"exact": hypergrad, "checkpointed": hypergrad_checkpointed,
           "store-all": hypergrad_unrolled}
LABELS = {"exact": "exact reversal (hypergrad)",
          "checkpointed": "checkpointing every ceil(sqrt(T)) (hypergrad_checkpointed)",
          "store-all": "store-all: autograd's tape (hypergrad_unrolled)"}
SIZES = (64, 20, 10)
STORE_ALL_MAX_T = 1000    # beyond this autograd's tape needs hundreds of MB (about 50 kB per step here)


def frontier_problem(T, sizes=SIZES, batch=50, n_examples=500, seed=0):
    """The comparison's problem: the bench's random data of the digits' shape (64 inputs,
    10 classes), a 64-20-10 tanh net (1,510 parameters), batches of 50, alpha = 0.1 and
    beta = 0.9 at every step.  Small enough that T = 10,000 takes seconds per method.
    Returns ``(train_loss, meta_loss, x0, alphas, betas)``."""
    return paper_problem(T, batch=batch, n_examples=n_examples, sizes=sizes, seed=seed)


def state_bytes(x0):
    """Bytes of one momentum state (x and v in float64): what a checkpoint stores."""
    return 2 * np.asarray(x0, dtype=np.float64).nbytes


@dataclass
class FrontierRow:
    """One method at one T: its peak memory and its time relative to float training."""
    T: int
    method: str
    peak_bytes: int
    time_ratios: np.ndarray     # method's time / float training's, one per paired repetition
    float_seconds: np.ndarray   # float training's time in each repetition
    buffer_bytes: float         # exact reversal's information buffer (its bits / 8); 0 otherwise
    n_params: int

    @property
    def time_ratio(self):
        """The median of the paired ratios."""
        return float(np.median(self.time_ratios))

    @property
    def states(self):
        """Peak memory in units of one momentum state (x and v, float64)."""
        return self.peak_bytes / (16 * self.n_params)


def _warm_up(problem, methods):
    """Run each method once on a 3-step problem: the first call of a function pays for
    imports and compiled kernels, which must not count against the first T measured."""
    tl, ml, x0, alphas, betas = problem(3)
    train(tl, x0, alphas, betas)
    for name in methods:
        METHODS[name](tl, ml, x0, alphas, betas)


def measure_point(T, methods=tuple(METHODS), *, repeats=3, problem=frontier_problem):
    """Measure ``methods`` (names in ``METHODS``) at one T; returns ``{name: FrontierRow}``.

    Times first (untraced, ``repeats`` paired repetitions against float training), then
    each method's peak memory in a separate traced run.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {sorted(METHODS)}, got {unknown}")
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be a whole number of steps >= 1, got {T!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    _warm_up(problem, methods)
    tl, ml, x0, alphas, betas = problem(int(T))
    t_float, ratios = paired_ratios(lambda: train(tl, x0, alphas, betas),
                                    [lambda f=METHODS[m]: f(tl, ml, x0, alphas, betas)
                                     for m in methods], repeats)
    rows = {}
    for name, r in zip(methods, ratios):
        result, peak = peak_memory(METHODS[name], tl, ml, x0, alphas, betas)
        rows[name] = FrontierRow(int(T), name, peak, r, t_float, result.buffer_bits / 8, len(x0))
    return rows


class Frontier:
    """Rows of ``measure_frontier``, with the arrays a figure needs."""

    def __init__(self, rows):
        self.rows = rows    # {(T, method): FrontierRow}

    def Ts(self, method):
        return np.array(sorted(T for T, m in self.rows if m == method))

    def peak(self, method):
        """Peak bytes of ``method`` at each of ``Ts(method)``."""
        return np.array([self.rows[T, method].peak_bytes for T in self.Ts(method)])

    def time_ratio(self, method):
        return np.array([self.rows[T, method].time_ratio for T in self.Ts(method)])

    def buffer(self):
        """Exact reversal's buffer bytes at each of ``Ts("exact")``."""
        return np.array([self.rows[T, "exact"].buffer_bytes for T in self.Ts("exact")])

    def slope(self, method, T_from=1):
        """Least-squares slope of log(peak memory) against log(T) for T >= ``T_from``:
        1 for memory linear in T, 1/2 for sqrt(T), 0 for flat."""
        Ts = self.Ts(method)
        keep = Ts >= T_from
        if keep.sum() < 2:
            raise ValueError(f"need two values of T >= {T_from} for {method}, have {Ts[keep]}")
        return float(np.polyfit(np.log(Ts[keep]), np.log(self.peak(method)[keep]), 1)[0])

    def crossover(self, cheaper="exact", other="checkpointed"):
        """The smallest measured T from which on ``cheaper`` needs less peak memory than
        ``other`` at every larger measured T (None if it never does)."""
        Ts = [T for T in self.Ts(cheaper) if (T, other) in self.rows]
        below = [self.rows[T, cheaper].peak_bytes < self.rows[T, other].peak_bytes for T in Ts]
        for i, T in enumerate(Ts):
            if all(below[i:]):
                return int(T)
        return None


def measure_frontier(Ts, *, store_all_max_T=STORE_ALL_MAX_T, repeats=3, problem=frontier_problem,
                     progress=False):
    """``measure_point`` for each T in ``Ts``: exact reversal and checkpointing always,
    store-all up to ``store_all_max_T``.  Returns a ``Frontier``."""
    rows = {}
    Ts = [int(T) for T in Ts]
    for T in (Progress(Ts, "T", leave=False) if progress else Ts):
        methods = ("exact", "checkpointed") + (("store-all",) if T <= store_all_max_T else ())
        for name, row in measure_point(T, methods, repeats=repeats, problem=problem).items():
            rows[T, name] = row
    return Frontier(rows)


def loss_evaluations(T=10, methods=tuple(METHODS), *, problem=frontier_problem):
    """How many times each method evaluates ``train_loss`` per training step (float
    training: 1).  Store-all traces each step once and differentiates the tape; exact
    reversal evaluates it again in the reverse pass (the Hessian-vector product gives the
    gradient too); checkpointing also recomputes every segment forward: one more."""
    tl, ml, x0, alphas, betas = problem(int(T))
    counts = {}
    for name in ("float training",) + tuple(methods):
        calls = [0]

        def counted(x, meta, t):
            calls[0] += 1
            return tl(x, meta, t)
        if name == "float training":
            train(counted, x0, alphas, betas)
        else:
            METHODS[name](counted, ml, x0, alphas, betas)
        counts[name] = calls[0] / T
    return counts


def stored_states(T, every):
    """States a checkpointed run holds at its peak: ceil(T / every) checkpoints plus one
    recomputed segment of ``every`` states (the segment's first state is its checkpoint)."""
    return math.ceil(T / every) + min(every, T)


@dataclass
class EveryScan:
    """Peak memory of ``hypergrad_checkpointed`` at a fixed T for several ``every``."""
    T: int
    everys: np.ndarray
    peak_bytes: np.ndarray
    state_bytes: int

    @property
    def states(self):
        """Peak memory in units of one state (x and v)."""
        return self.peak_bytes / self.state_bytes

    @property
    def model(self):
        """ceil(T / every) + every: the states the algorithm keeps, without overheads."""
        return np.array([stored_states(self.T, int(e)) for e in self.everys], dtype=float)

    @property
    def overhead(self):
        """The measured constant, in states: the median of (measured - model)."""
        return float(np.median(self.states - self.model))

    @property
    def best_every(self):
        return int(self.everys[np.argmin(self.peak_bytes)])


def memory_against_every(T, everys=None, *, problem=frontier_problem, progress=False):
    """Measure ``hypergrad_checkpointed``'s peak memory at one T for each ``every``
    (default: powers of two from 1 to T, and ceil(sqrt(T))).  Returns an ``EveryScan``."""
    if everys is None:
        everys = sorted({2 ** k for k in range(int(math.log2(T)) + 1)} | {default_every(T), T})
    everys = [int(e) for e in everys]
    tl, ml, x0, alphas, betas = problem(int(T))
    hypergrad_checkpointed(tl, ml, x0, alphas, betas, every=everys[0])    # warm up
    peaks = [peak_memory(hypergrad_checkpointed, tl, ml, x0, alphas, betas, every=e)[1]
             for e in (Progress(everys, "every", leave=False) if progress else everys)]
    return EveryScan(int(T), np.array(everys), np.array(peaks), state_bytes(x0))
