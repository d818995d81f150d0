"""Judging hyperparameters fairly: scores on seeds the tuning never saw, as mean ± sd.

Hyperparameters tuned on one random seed (one draw of the initial weights, one
order of the minibatches) can fit the quirks of that seed.  The paper therefore
drew a fresh seed at every hypergradient evaluation; and a fair judgement
trains again on *other* seeds, never used while tuning, and reports the mean
and the standard deviation over them.  Compare two methods on the same seeds,
and call a difference smaller than the spread a tie.

    scores = on_seeds(lambda s: {"loss": final_loss(schedule, seed=s)},
                      EVAL_SEEDS, exclude=META_SEEDS)
    print(scores["loss"])                     # 0.123 ± 0.004 (20 seeds)
    compare(scores["loss"], baseline["loss"]).verdict   # "lower", "higher" or "tie"
    compare(scores["loss"], baseline["loss"]).sign_test_p  # paired: could a coin do it?
"""
from dataclasses import dataclass
from math import comb
from numbers import Integral, Real

import numpy as np

from .progress import Progress

__all__ = ["Spread", "Comparison", "on_seeds", "compare", "table"]


@dataclass(frozen=True)
class Spread:
    """One number measured on several seeds: ``values``, ``mean``, ``sd`` (n - 1 in the
    denominator), ``n``.  ``format(spread, ".3f")`` gives "0.123 ± 0.004"."""
    values: np.ndarray

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("a Spread needs at least one value")
        object.__setattr__(self, "values", v)

    @property
    def n(self):
        return len(self.values)

    @property
    def mean(self):
        return float(np.mean(self.values))

    @property
    def sd(self):
        """The sample standard deviation (0 for a single value, which has no spread to show)."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def __format__(self, spec):
        spec = spec or ".3g"
        return f"{format(self.mean, spec)} ± {format(self.sd, spec)}"

    def __str__(self):
        return f"{self:.3g} ({self.n} seeds)"


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` (lower is better): ``difference`` = mean a - mean b,
    ``spread`` = the larger of the two standard deviations, ``verdict`` "lower",
    "higher" or "tie" (|difference| <= spread), and, when both were measured on
    the same seeds, ``a_lower_on`` = on how many of them a was lower and ``ties``
    = on how many a and b were equal (``sign_test_p`` turns the two into a p-value)."""
    difference: float
    spread: float
    verdict: str
    a_lower_on: object
    n: int
    unit: str = "seeds"
    ties: object = None

    @property
    def sign_test_p(self):
        """The exact two-sided sign test of the paired counts (None if a and b are not paired).

        If a and b were equally good, each seed where they differ would be a fair coin
        toss for which one is lower; the p-value is the chance that the tosses come out
        at least as one-sided as ``a_lower_on`` of them (seeds with a tie are left out).
        A small p (say below 0.05) means the count is hard to get by luck; with several
        comparisons, some small p-values arise by luck alone.
        """
        if self.a_lower_on is None:
            return None
        m = self.n - (self.ties or 0)
        k = min(self.a_lower_on, m - self.a_lower_on)
        return min(1.0, 2 * sum(comb(m, i) for i in range(k + 1)) / 2 ** m)

    def __str__(self):
        if self.verdict == "tie":
            text = f"a tie (difference {self.difference:+.2g}, inside the spread {self.spread:.2g})"
        else:
            text = f"{self.verdict} by {abs(self.difference):.2g} (spread {self.spread:.2g})"
        if self.a_lower_on is not None:
            text += f", lower on {self.a_lower_on} of {self.n} {self.unit}"
        return text


def _check_seeds(seeds, exclude):
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed to evaluate on")
    bad = [s for s in seeds if not isinstance(s, Integral)]
    if bad:
        raise TypeError(f"seeds must be integers, got {bad[:3]!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (each one is a separate experiment), got "
                         f"{seeds!r}")
    used = sorted(set(seeds) & set(int(s) for s in exclude))
    if used:
        raise ValueError(f"the evaluation seeds {used[:10]} were also used while tuning "
                         "(exclude): a fair evaluation uses seeds the tuning never saw; "
                         "pick them from another range, e.g. range(1000, 1020)")
    return [int(s) for s in seeds]


def on_seeds(score, seeds, *, exclude=(), progress=None):
    """Run ``score(seed)`` for every seed and collect the results as ``Spread``s.

    ``score`` returns a number or a dict of numbers (e.g. {"train_loss": ...,
    "test_loss": ...}); the result is then a ``Spread`` or a dict of them.
    ``exclude`` holds the seeds used while tuning (e.g. one per meta-iteration):
    evaluating on any of them raises, because a seed the hyperparameters were
    fitted to flatters them.  ``progress="label"`` shows a progress bar.
    """
    seeds = _check_seeds(seeds, exclude)
    loop = seeds if not progress else Progress(seeds, desc=str(progress))
    results = [score(s) for s in loop]
    if all(isinstance(r, dict) for r in results):
        keys = list(results[0])
        for s, r in zip(seeds, results):
            if list(r) != keys:
                raise ValueError(f"score returned the keys {list(r)} for seed {s} but {keys} "
                                 f"for seed {seeds[0]}: return the same keys every time")
        return {k: Spread(_numbers([r[k] for r in results], k, seeds)) for k in keys}
    return Spread(_numbers(results, "score", seeds))


def _numbers(values, name, seeds):
    out = []
    for s, v in zip(seeds, values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.ndarray, np.generic)) \
                or np.ndim(v) != 0:
            raise TypeError(f"{name} must be one number per seed, got {v!r} for seed {s}")
        out.append(float(v))
    return np.array(out)


def compare(a, b, unit="seeds"):
    """Compare ``Spread`` a with ``Spread`` b, lower being better (losses, error rates).

    A difference of the means no larger than the larger standard deviation is a
    tie: that is how far one seed's result typically lies from the mean, so a
    smaller difference is not one a reader could count on.  When a and b were
    measured on the same seeds (same n), ``a_lower_on`` counts the seeds where
    a was lower, the paired view of the same numbers (``unit`` names them in the
    text, e.g. "splits"), and ``sign_test_p`` says how surprising that count
    would be if neither were better.
    """
    if not isinstance(a, Spread) or not isinstance(b, Spread):
        raise TypeError(f"compare takes two Spreads (from on_seeds), got "
                        f"{type(a).__name__} and {type(b).__name__}")
    difference = a.mean - b.mean
    spread = max(a.sd, b.sd)
    if abs(difference) <= spread:
        verdict = "tie"
    else:
        verdict = "lower" if difference < 0 else "higher"
    paired = int(np.sum(a.values < b.values)) if a.n == b.n else None
    ties = int(np.sum(a.values == b.values)) if a.n == b.n else None
    return Comparison(difference, spread, verdict, paired, a.n, unit, ties)


def table(rows, columns=None, fmt=".3f", name_width=None):
    """A text table of ``rows`` = {row name: {column: Spread}}, each cell "mean ± sd".

    ``columns`` picks and orders the columns (default: those of the first row).
    """
    if not rows:
        raise ValueError("table needs at least one row")
    columns = list(next(iter(rows.values()))) if columns is None else list(columns)
    width = name_width or max(len(r) for r in rows)
    cells = {r: [format(v[c], fmt) for c in columns] for r, v in rows.items()}
    col_w = [max(len(c), *(len(cells[r][j]) for r in rows)) for j, c in enumerate(columns)]
    lines = [" " * width + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, col_w))]
    for r in rows:
        lines.append(r.ljust(width) + "  " + "  ".join(x.rjust(w) for x, w in zip(cells[r], col_w)))
    return "\n".join(lines)
