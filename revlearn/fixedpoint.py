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
import threading

import numpy as np

from .buffer import InfoBuffer

DEFAULT_FRAC_BITS = 48  # multiply error < 1 ulp = 2**-48; range |x| < 16384
LIMIT_BITS = 62   # |k| < 2**62, so the sum of two in-range numbers cannot wrap an int64
_LIMIT = 1 << LIMIT_BITS
_MAGIC = 1.5 * 2.0**52            # x + _MAGIC holds round(x) in its low bits for |x| < 2**51
_MAGIC_BITS = np.float64(_MAGIC).view(np.int64)
_MAGIC_RANGE = 2.0**51
_ROUND_UP = 1 + 2.0**-50          # keeps float bounds on max|k| above the truth despite rounding


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


def _scalar(x):
    return isinstance(x, (int, float, np.integer, np.floating))


def _floor_divmod(k, m, q=None, r=None):
    """Floor quotient and non-negative remainder of int64 ``k`` by positive ``m``
    (into ``q`` and ``r`` when given; ``r`` must not be ``k``)."""
    if (_scalar(m) or np.ndim(m) == 0) and int(m) & (int(m) - 1) == 0:  # 2**s: shifts floor
        s = int(m).bit_length() - 1
        return np.right_shift(k, s, out=q), np.bitwise_and(k, int(m) - 1, out=r)
    q = np.floor_divide(k, m, out=q)
    return q, np.subtract(k, np.multiply(q, m, out=r), out=r)  # cheaper than np.mod


_SCRATCH = threading.local()


def _scratch(size):
    """Two int64 scratch arrays of ``size``, shared by every ExactArray of that size in
    this thread: operations run one at a time, and reusing the same few arrays keeps
    them in cache and spares fresh memory (on many machines a page fault per 4 kB)."""
    cache = getattr(_SCRATCH, "arrays", None)
    if cache is None:
        cache = _SCRATCH.arrays = {}
    if size not in cache:
        if len(cache) >= 4:
            cache.clear()
        cache[size] = {name: np.empty(size, dtype=np.int64) for name in ("q", "r")}
    return cache[size]


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

    @property
    def k(self):
        """The integers (updated in place by every operation: copy them to keep them)."""
        return self._k

    @k.setter
    def k(self, value):
        self._k = value
        self._bound = None     # unknown: the next range check looks at every entry

    @property
    def val(self):
        """The values as float64 (a new array; exact while |k| < 2**53)."""
        return self._k * (1.0 / self._scale)

    def to_fixed(self, a, what="an increment"):
        """Round a float array to integer multiples of 2**-frac_bits (a new int64 array)."""
        scaled = np.asarray(a, dtype=np.float64) * self._scale
        self._check_scaled(scaled, what)
        return np.rint(scaled).astype(np.int64)

    def add(self, a, scale=1.0):
        """k += round(scale * a * 2**R): exact, and undone exactly by ``sub(a, scale)``.

        ``a`` is a float array or an ExactArray (``X.add(V, alpha)`` is x += alpha v)."""
        inc, size = self._increment(a, scale, "adding the increment")
        np.add(self._k, inc, out=self._k)   # |k|, |inc| <= 2**62: no wrap-around possible
        self._after_increment(inc, size, np.subtract, "adding the increment")

    def sub(self, a, scale=1.0):
        """k -= round(scale * a * 2**R): the exact inverse of ``add(a, scale)``."""
        inc, size = self._increment(a, scale, "subtracting the increment")
        np.subtract(self._k, inc, out=self._k)
        self._after_increment(inc, size, np.add, "subtracting the increment")

    def mul(self, n, d):
        """Multiply by n/d exactly: the remainder k mod d goes into the buffer.

        The result is within one grid step of k * n / d (``InfoBuffer``);
        raises before overflowing when n > d."""
        w = self._scratch()
        q, r = _floor_divmod(self._k, d, w["q"], w["r"])
        bound = self._bound_after(q, n, d, "multiplying by n/d")
        # push r (base d), pop base n; 0 <= r < d by construction, so no need to check it
        np.multiply(q, n, out=self._k)     # k = q n + digit; q's space then takes the digits
        try:
            low = self.buffer.exchange(r, d, n, out=q, check=False)
        except BaseException:              # the buffer refused (underflow): put k back
            np.add(np.multiply(np.floor_divide(self._k, n, out=q), d, out=self._k), r,
                   out=self._k)
            raise
        np.add(self._k, low, out=self._k)
        self._bound = bound

    def div(self, n, d):
        """Divide by n/d exactly (the inverse of ``mul``); raises before overflowing.

        The new low digit is popped from the buffer, so dividing needs bits that
        earlier multiplies stored; with none there it raises BufferUnderflowError.
        """
        w = self._scratch()
        q, r = _floor_divmod(self._k, n, w["q"], w["r"])
        bound = self._bound_after(q, d, n, "dividing by n/d")
        np.multiply(q, d, out=self._k)     # mul's exchange with the bases swapped, as above
        try:
            low = self.buffer.exchange(r, n, d, out=q, check=False)
        except BaseException:
            np.add(np.multiply(np.floor_divide(self._k, d, out=q), n, out=self._k), r,
                   out=self._k)
            raise
        np.add(self._k, low, out=self._k)
        self._bound = bound

    def _bound_after(self, q, m, divisor, what):
        """Before k becomes q * m + (a digit below m), q = floor(k / divisor): a bound on
        the new max|k|.  From the running bound when that proves the result in range
        (|q m + digit| <= |k| m / divisor + 2 m), else from q itself, raising if the
        result would not fit."""
        if _scalar(m) and _scalar(divisor):     # the common case, without numpy overhead
            m_max, ratio = float(m), float(m) / float(divisor)
        else:
            m_max, ratio = float(np.max(m)), float(np.max(np.asarray(m) / np.asarray(divisor)))
        if self._bound is not None:
            bound = (self._bound * ratio + 2 * m_max + 1) * _ROUND_UP
            if bound < _LIMIT:
                return bound
        if not q.size:
            return 0.0
        m = np.asarray(m, dtype=np.int64)
        room = _LIMIT // m - 1
        if m.ndim == 0:
            biggest = max(int(q.max()), -int(q.min()))
            ok = biggest <= room
        else:
            biggest = int(np.max(np.abs(q)))
            ok = not (np.abs(q) > room).any()
        if not ok:
            worst = float(np.max(np.abs(q.astype(np.float64)) * m)) / self._scale
            raise _overflow(what, self.frac_bits, worst)
        return (biggest + 1.0) * m_max * _ROUND_UP

    def _scratch(self):
        return _scratch(len(self._k))

    def _increment(self, a, scale, what):
        """round(scale * a * 2**R) as int64, in scratch space, after checking the range."""
        w = self._scratch()
        known = None
        scale = float(scale) if _scalar(scale) else np.asarray(scale, dtype=np.float64)
        if isinstance(a, ExactArray):   # a.k * 2**-R_a as floats, without a temporary
            factor = scale * 2.0 ** (self.frac_bits - a.frac_bits)
            if a._bound is not None:    # integers times a factor: finite, and this big at most
                known = a._bound * (abs(factor) if _scalar(factor)
                                    else float(np.max(np.abs(factor)))) * _ROUND_UP
            a, scale = a.k, factor * 2.0 ** -self.frac_bits
        scaled = np.multiply(a, scale * self._scale, out=w["r"].view(np.float64))
        size = known if known is not None and known < _LIMIT else \
            self._check_scaled(scaled, what)
        if size < _MAGIC_RANGE:
            # Round to nearest even by adding 1.5 * 2**52: the sum's low mantissa bits are
            # then the integer (np.rint + a float-to-int cast is slower: no SIMD for it).
            np.add(scaled, _MAGIC, out=scaled)
            return np.subtract(scaled.view(np.int64), _MAGIC_BITS, out=w["q"]), size
        np.rint(scaled, out=scaled)
        np.copyto(w["q"], scaled, casting="unsafe")  # integral and below 2**62: exact
        return w["q"], size

    def _check_scaled(self, scaled, what):
        """The largest |value| in ``scaled``, after checking it is finite and in range."""
        if not scaled.size:
            return 0.0
        hi, lo = scaled.max(), scaled.min()   # NaN propagates into both
        if not (hi < _LIMIT and lo > -_LIMIT):
            if not np.isfinite(scaled).all():
                raise FloatingPointError(f"{what} is not finite (NaN or inf); cannot store it exactly")
            raise _overflow(what, self.frac_bits, max(hi, -lo) / self._scale)
        return max(hi, -lo)

    def _after_increment(self, inc, size, undo, what):
        """After k += inc (|inc| <= size + 1/2): if k may have left the range, look at every
        entry; if it did, put k back with ``undo(k, inc)`` and raise."""
        if self._bound is not None:
            bound = (self._bound + size + 1) * _ROUND_UP
            if bound < _LIMIT:      # cannot have left the range: skip the two passes over k
                self._bound = bound
                return
        k = self._k
        hi, lo = (int(k.max()), int(k.min())) if k.size else (0, 0)
        if hi >= _LIMIT or lo <= -_LIMIT:
            undo(k, inc, out=k)
            raise _overflow(what, self.frac_bits, max(hi, -lo) / self._scale)
        self._bound = float(max(hi, -lo))

    def __len__(self):
        return len(self.k)

    def __repr__(self):
        return f"ExactArray({self.val!r}, frac_bits={self.frac_bits})"
