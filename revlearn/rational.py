"""Writing the momentum decay beta as an exact fraction n/d.

Exact reversal multiplies integers by n/d, so every beta must be a rational
number.  We use a power-of-two denominator d = 2**denominator_bits (the paper:
d = 2**16) and n = round(beta * d).  All of revlearn then uses n/d, not the
nominal beta: in (1 - beta) g, in the hypergradient and in the baselines.
"""
import numpy as np

DEFAULT_DENOMINATOR_BITS = 16


def check_betas(betas):
    """Raise a ValueError unless every beta lies in (0, 1]; return a float array."""
    b = np.asarray(betas, dtype=np.float64)
    bad = ~np.isfinite(b) | (b <= 0) | (b > 1)
    if bad.any():
        v = b[bad].flat[0]
        raise ValueError(f"momentum decay beta must lie in (0, 1], got {v!r}. beta = 0 would "
                         "erase the velocity (nothing to reverse) and beta > 1 makes training "
                         "unstable; use e.g. beta = 0.9, or beta = 1 for no decay.")
    return b


def to_rational(betas, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Return integer arrays ``(n, d)`` with n/d the closest fraction to each beta
    with denominator d = 2**denominator_bits (never 0: the smallest beta is 1/d)."""
    if not (1 <= int(denominator_bits) <= 20):
        raise ValueError(f"denominator_bits must be in 1..20, got {denominator_bits}")
    b = check_betas(betas)
    d = 1 << int(denominator_bits)
    n = np.clip(np.rint(b * d), 1, d).astype(np.int64)
    return n, d


def rational_value(betas, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The betas that exact training really uses: n/d as floats."""
    n, d = to_rational(betas, denominator_bits)
    return n / d
