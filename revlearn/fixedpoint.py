"""Fixed-point arrays with exact addition and exact rational multiplication.

An ``ExactArray`` stores values as int64 integers k meaning k * 2**-R (R =
``frac_bits``).  Adding a float increment rounds it once to the grid
(k += round(a * 2**R)); subtracting the *same* float increment later undoes it
exactly.  Multiplying by n/d is exact too, because the remainder that integer
division throws away goes into an information buffer and comes back on ``div``.
Nothing ever wraps around: leaving the range raises ``OverflowError``.

The multiply is memory-optimal and, with the default ``InfoBuffer``, within
one grid step of k * n / d: the remainder is pushed on top of the buffer's
digit and the new low digit popped from the same slot (``BigIntBuffer``, the
paper's scheme, lands within n grid steps).

Operations update ``k`` in place and reuse scratch arrays, because on many
machines allocating fresh memory for every temporary costs more than the
arithmetic.  Copy ``k`` (``X.k.copy()``) to keep a snapshot.
"""
import numpy as np

from .buffer import InfoBuffer

DEFAULT_FRAC_BITS = 48  # multiply error < 1 ulp = 2**-48; range |x| < 16384
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


def _floor_divmod(k, m, q=None, r=None):
    """Floor quotient and non-negative remainder of int64 ``k`` by positive ``m``
    (into ``q`` and ``r`` when given; ``r`` must not be ``k``)."""
    if np.ndim(m) == 0 and int(m) & (int(m) - 1) == 0:  # power of two: shifts are floor ops
        s = int(m).bit_length() - 1
        return np.right_shift(k, s, out=q), np.bitwise_and(k, int(m) - 1, out=r)
    q = np.floor_divide(k, m, out=q)
    return q, np.subtract(k, np.multiply(q, m, out=r), out=r)  # cheaper than np.mod


class ExactArray:
    """A 1-D fixed-point array: int64 ``k`` with value ``k * 2**-frac_bits``.

    ``val`` is the float view.  ``add(a, scale)``/``sub(a, scale)`` add or
    subtract ``scale * a`` rounded to the grid once (``a`` a float array or
    another ExactArray), ``mul(n, d)``/``div(n, d)`` multiply/divide exactly by
    the fraction n/d using ``buffer`` (an ``InfoBuffer`` by default) to keep the
    remainders.  ``n`` and ``d`` may be scalars or one per element.
    """

    def __init__(self, values, frac_bits=DEFAULT_FRAC_BITS, buffer=None):
        if not (1 <= int(frac_bits) <= 60):
            raise ValueError(f"frac_bits must be in 1..60, got {frac_bits}")
        self.frac_bits = int(frac_bits)
        self._scale = 2.0 ** self.frac_bits
        if np.ndim(values) != 1:
            raise ValueError(f"ExactArray holds a flat 1-D array, got shape {np.shape(values)}; "
                             "flatten parameters first (autograd.misc.flatten)")
        self.k = self.to_fixed(values, "the initial value")
        self.buffer = buffer if buffer is not None else InfoBuffer(len(self.k))
        self._work = None

    @property
    def val(self):
        """The values as float64 (a new array; exact while |k| < 2**53)."""
        return self.k * (1.0 / self._scale)

    def to_fixed(self, a, what="an increment"):
        """Round a float array to integer multiples of 2**-frac_bits (a new int64 array)."""
        scaled = np.asarray(a, dtype=np.float64) * self._scale
        self._check_scaled(scaled, what)
        return np.rint(scaled).astype(np.int64)

    def add(self, a, scale=1.0):
        """k += round(scale * a * 2**R): exact, and undone exactly by ``sub(a, scale)``.

        ``a`` is a float array or an ExactArray (``X.add(V, alpha)`` is x += alpha v)."""
        inc = self._increment(a, scale, "adding the increment")
        np.add(self.k, inc, out=self.k)   # |k|, |inc| <= 2**62: no wrap-around possible
        self._check_range(inc, np.subtract, "adding the increment")

    def sub(self, a, scale=1.0):
        """k -= round(scale * a * 2**R): the exact inverse of ``add(a, scale)``."""
        inc = self._increment(a, scale, "subtracting the increment")
        np.subtract(self.k, inc, out=self.k)
        self._check_range(inc, np.add, "subtracting the increment")

    def mul(self, n, d):
        """Multiply by n/d exactly: the remainder k mod d goes into the buffer."""
        w = self._scratch()
        q, r = _floor_divmod(self.k, d, w["q"], w["r"])
        low = self.buffer.exchange(r, d, n, out=w["digit"])   # push r (base d), pop base n
        np.add(np.multiply(q, n, out=self.k), low, out=self.k)  # |result| <= |k|: no overflow

    def div(self, n, d):
        """Divide by n/d exactly (the inverse of ``mul``); raises before overflowing.

        The new low digit is popped from the buffer, so dividing needs bits that
        earlier multiplies stored; with none there it raises BufferUnderflowError.
        """
        w = self._scratch()
        q, r = _floor_divmod(self.k, n, w["q"], w["r"])
        room = _LIMIT // np.asarray(d, dtype=np.int64) - 1
        if q.size and ((q.max() > room or q.min() < -room) if room.ndim == 0
                       else (np.abs(q) > room).any()):
            biggest = float(np.max(np.abs(q.astype(np.float64)) * np.asarray(d) / self._scale))
            raise _overflow("dividing by n/d", self.frac_bits, biggest)
        low = self.buffer.exchange(r, n, d, out=w["digit"])   # mul's exchange, bases swapped
        np.add(np.multiply(q, d, out=self.k), low, out=self.k)

    def _scratch(self):
        # reused by every operation: fresh temporaries cost page faults on every step
        if self._work is None or len(self._work["q"]) != len(self.k):
            self._work = {name: np.empty(len(self.k), dtype=dtype) for name, dtype in
                          [("q", np.int64), ("r", np.int64), ("digit", np.int64),
                           ("float", np.float64), ("inc", np.int64)]}
        return self._work

    def _increment(self, a, scale, what):
        """round(scale * a * 2**R) as int64, in scratch space, after checking the range."""
        w = self._scratch()
        if isinstance(a, ExactArray):   # a.k * 2**-R_a as floats, without a temporary
            a, scale = a.k, np.asarray(scale) * 2.0 ** -a.frac_bits
        scaled = np.multiply(a, np.asarray(scale) * self._scale, out=w["float"])
        self._check_scaled(scaled, what)
        np.rint(scaled, out=scaled)
        np.copyto(w["inc"], scaled, casting="unsafe")  # integral and below 2**62: exact
        return w["inc"]

    def _check_scaled(self, scaled, what):
        if not scaled.size:
            return
        hi, lo = scaled.max(), scaled.min()   # NaN propagates into both
        if not (hi < _LIMIT and lo > -_LIMIT):
            if not np.isfinite(scaled).all():
                raise FloatingPointError(f"{what} is not finite (NaN or inf); cannot store it exactly")
            raise _overflow(what, self.frac_bits, max(hi, -lo) / self._scale)

    def _check_range(self, inc, undo, what):
        """If k left the range: put it back with ``undo(k, inc)`` and raise."""
        k = self.k
        if k.size and (k.max() >= _LIMIT or k.min() <= -_LIMIT):
            biggest = np.abs(k).max() / self._scale
            undo(k, inc, out=k)
            raise _overflow(what, self.frac_bits, biggest)

    def __len__(self):
        return len(self.k)

    def __repr__(self):
        return f"ExactArray({self.val!r}, frac_bits={self.frac_bits})"
