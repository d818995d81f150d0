"""Fixed-point arrays with exact addition and exact rational multiplication.

An ``ExactArray`` stores values as int64 integers k meaning k * 2**-R (R =
``frac_bits``).  Adding a float increment rounds it once to the grid
(k += round(a * 2**R)); subtracting the *same* float increment later undoes it
exactly.  Multiplying by n/d is exact too, because the remainder that integer
division throws away goes into an information buffer and comes back on ``div``.
Nothing ever wraps around: leaving the range raises ``OverflowError``.

The multiply is memory-optimal but not round-to-nearest: the low digit of the
result is popped from the buffer (bits stored by earlier steps), so
``mul(n, d)`` lands within n grid steps of k * n / d.  With the default R = 48
and d = 2**16 that is an error below 2**-32 per multiply.
"""
import numpy as np

from .buffer import InfoBuffer

DEFAULT_FRAC_BITS = 48  # multiply error < n ulps = 2**-32 at d = 2**16; range |x| < 16384
LIMIT_BITS = 62   # |k| < 2**62, so the sum of two in-range numbers cannot wrap an int64
_LIMIT = 1 << LIMIT_BITS


def value_range(frac_bits):
    """Largest magnitude an ExactArray with ``frac_bits`` fractional bits can hold."""
    return 2.0 ** (LIMIT_BITS - frac_bits)


def _overflow(what, frac_bits, biggest):
    return OverflowError(
        f"{what} would reach |x| = {biggest:.4g}, outside the exact fixed-point range "
        f"|x| < 2**{LIMIT_BITS - frac_bits} = {value_range(frac_bits):.4g} "
        f"(frac_bits={frac_bits}). Use fewer fractional bits (frac_bits={max(frac_bits - 8, 1)} "
        "gives a 256x wider range) or keep weights and velocities smaller (smaller step sizes, "
        "larger beta). revlearn never wraps around silently.")


def _floor_divmod(k, m):
    """Floor quotient and non-negative remainder of int64 ``k`` by positive ``m``."""
    if np.ndim(m) == 0 and int(m) & (int(m) - 1) == 0:  # power of two: shifts are floor ops
        s = int(m).bit_length() - 1
        return k >> s, k & (int(m) - 1)
    q = np.floor_divide(k, m)
    return q, k - q * m   # cheaper than np.mod, same non-negative remainder


class ExactArray:
    """A 1-D fixed-point array: int64 ``k`` with value ``k * 2**-frac_bits``.

    ``val`` is the float view.  ``add``/``sub`` take float increments (rounded
    to the grid once), ``mul(n, d)``/``div(n, d)`` multiply/divide exactly by
    the fraction n/d using ``buffer`` (an ``InfoBuffer`` by default) to keep the
    remainders.  ``n`` and ``d`` may be scalars or one per element.
    """

    def __init__(self, values, frac_bits=DEFAULT_FRAC_BITS, buffer=None):
        if not (1 <= int(frac_bits) <= 60):
            raise ValueError(f"frac_bits must be in 1..60, got {frac_bits}")
        self.frac_bits = int(frac_bits)
        self._scale = 2.0 ** self.frac_bits
        self.k = np.zeros(np.shape(values), dtype=np.int64)
        if self.k.ndim != 1:
            raise ValueError(f"ExactArray holds a flat 1-D array, got shape {self.k.shape}; "
                             "flatten parameters first (autograd.misc.flatten)")
        self.k = self.to_fixed(values, "the initial value")
        self.buffer = buffer if buffer is not None else InfoBuffer(len(self.k))

    @property
    def val(self):
        """The values as float64 (exact while |k| < 2**53)."""
        return self.k * (1.0 / self._scale)

    def to_fixed(self, a, what="an increment"):
        """Round a float array to integer multiples of 2**-frac_bits."""
        scaled = np.asarray(a, dtype=np.float64) * self._scale
        biggest = np.abs(scaled).max() if scaled.size else 0.0
        if not biggest < _LIMIT:  # one reduction catches NaN, inf and overflow
            if not np.isfinite(scaled).all():
                raise FloatingPointError(f"{what} is not finite (NaN or inf); cannot store it exactly")
            raise _overflow(what, self.frac_bits, biggest / self._scale)
        return np.rint(scaled).astype(np.int64)

    def add(self, a):
        """k += round(a * 2**R): exact, and undone exactly by ``sub`` of the same ``a``."""
        self.k = self._checked(self.k + self.to_fixed(a), "adding the increment")

    def sub(self, a):
        """k -= round(a * 2**R): the exact inverse of ``add(a)``."""
        self.k = self._checked(self.k - self.to_fixed(a), "subtracting the increment")

    def mul(self, n, d):
        """Multiply by n/d exactly: the remainder k mod d goes into the buffer."""
        q, r = _floor_divmod(self.k, d)
        self.k = q * n + self.buffer.exchange(r, d, n)   # push r (base d), pop base n

    def div(self, n, d):
        """Divide by n/d exactly (the inverse of ``mul``); raises before overflowing.

        The new low digit is popped from the buffer, so dividing needs bits that
        earlier multiplies stored; with none there it raises BufferUnderflowError.
        """
        q, r = _floor_divmod(self.k, n)
        if (np.abs(q) > _LIMIT // np.asarray(d, dtype=np.int64) - 1).any():
            biggest = float(np.max(np.abs(q.astype(np.float64)) * np.asarray(d) / self._scale))
            raise _overflow("dividing by n/d", self.frac_bits, biggest)
        # the exact inverse of mul's exchange: bases swapped, chunks in reverse order
        self.k = q * d + self.buffer.exchange(r, n, d, reverse=True)

    def _checked(self, k, what):
        if k.size and (k.max() >= _LIMIT or k.min() <= -_LIMIT):
            raise _overflow(what, self.frac_bits, np.abs(k).max() / self._scale)
        return k

    def __len__(self):
        return len(self.k)

    def __repr__(self):
        return f"ExactArray({self.val!r}, frac_bits={self.frac_bits})"
