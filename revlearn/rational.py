"""Writing a decay such as the momentum beta as an exact fraction n/d.

Exact reversal multiplies integers by n/d, so every decay must be a rational
number.  We use a power-of-two denominator d = 2**denominator_bits (the paper:
d = 2**16) and n = round(beta * d).  All of revlearn then uses n/d, not the
nominal beta: in (1 - beta) g, in the hypergradient and in the baselines.
"""
import numpy as np

DEFAULT_DENOMINATOR_BITS = 16


def check_betas(betas, name="beta"):
    """Raise a ValueError unless every decay lies in (0, 1]; return a float array."""
    b = np.asarray(betas, dtype=np.float64)
    bad = ~np.isfinite(b) | (b <= 0) | (b > 1)
    if bad.any():
        v = b[bad].flat[0]
        what = "momentum decay beta" if name in ("beta", "betas") else f"decay {name}"
        raise ValueError(f"{what} must lie in (0, 1], got {v!r}. A decay of 0 erases the state "
                         "(there is nothing to reverse) and one above 1 makes it grow without "
                         "bound; use e.g. 0.9. (A decay of exactly 1 keeps the old state and "
                         "ignores every new gradient: for momentum, training then never moves.)")
    return b


def check_denominator_bits(denominator_bits):
    """The number of bits k of the denominator d = 2**k, checked (an int in 1..20)."""
    if isinstance(denominator_bits, bool) or not isinstance(denominator_bits, (int, np.integer)) \
            or not 1 <= denominator_bits <= 20:
        raise ValueError(f"denominator_bits must be an integer in 1..20 (the denominator of "
                         f"each decay n/d is d = 2**denominator_bits; the default is "
                         f"{DEFAULT_DENOMINATOR_BITS}), got {denominator_bits!r}")
    return int(denominator_bits)


def to_rational(betas, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """Return integer arrays ``(n, d)`` with n/d the closest fraction to each beta
    with denominator d = 2**denominator_bits (never 0: the smallest beta is 1/d)."""
    k = check_denominator_bits(denominator_bits)
    b = check_betas(betas)
    d = 1 << k
    n = np.clip(np.rint(b * d), 1, d).astype(np.int64)
    return n, d


def rational_value(betas, denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The betas that exact training really uses: n/d as floats."""
    n, d = to_rational(betas, denominator_bits)
    return n / d
