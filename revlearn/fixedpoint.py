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

from . import kernels
from .buffer import LOW_HEAD, MAX_BASE, WORD_BITS, InfoBuffer, exchange_plan

DEFAULT_FRAC_BITS = 48  # multiply error < 1 ulp = 2**-48; range |x| < 16384
LIMIT_BITS = 62   # |k| < 2**62, so the sum of two in-range numbers cannot wrap an int64
_LIMIT = 1 << LIMIT_BITS
_MAGIC = 1.5 * 2.0**52            # x + _MAGIC holds round(x) in its low bits for |x| < 2**51
_MAGIC_BITS = np.float64(_MAGIC).view(np.int64)
_MAGIC_RANGE = 2.0**51
_ROUND_UP = 1 + 2.0**-50          # keeps float bounds on max|k| above the truth despite rounding


MIN_SUGGESTED_FRAC_BITS = 32   # below this the grid gets too coarse for most training runs
MAX_ELEMENT_FRAC_BITS = 120    # per-element formats may be finer (tiny values, tiny range)


def value_range(frac_bits):
    """Largest magnitude an ExactArray with ``frac_bits`` fractional bits can hold."""
    return 2.0 ** (LIMIT_BITS - frac_bits)


def check_frac_bits(frac_bits, size=None):
    """``frac_bits`` as an int in 1..60 (or, given ``size``, possibly an int array of one
    value per element), or a clear error."""
    if size is not None and np.ndim(frac_bits) == 1:
        b = np.asarray(frac_bits)
        if not np.issubdtype(b.dtype, np.integer) or b.shape != (size,) or \
                (b.size and (b.min() < 1 or b.max() > MAX_ELEMENT_FRAC_BITS)):
            raise ValueError(f"per-element frac_bits must be {size} integers in "
                             f"1..{MAX_ELEMENT_FRAC_BITS}, got {b.dtype} {b.shape}")
        return b.astype(np.int64)
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) \
            or not 1 <= frac_bits <= 60:
        raise ValueError(f"frac_bits must be an integer in 1..60 (values are stored as "
                         f"k * 2**-frac_bits; the default is {DEFAULT_FRAC_BITS}), got "
                         f"{frac_bits!r}")
    return int(frac_bits)


def _overflow(what, frac_bits, biggest):
    wider = frac_bits - 8
    if wider >= MIN_SUGGESTED_FRAC_BITS:
        fix = (f"Use fewer fractional bits (frac_bits={wider} gives a 256x wider range, with a "
               f"grid of 2**-{wider}) or keep the values smaller")
    else:
        fix = ("Fewer fractional bits would make the grid too coarse for exact training to "
               "follow the float dynamics, so keep the values smaller instead")
    return OverflowError(
        f"{what} would reach |x| = {biggest:.4g}, outside the exact fixed-point range "
        f"|x| < 2**{LIMIT_BITS - frac_bits} = {value_range(frac_bits):.4g} "
        f"(frac_bits={frac_bits}). {fix} (smaller step sizes, larger beta, inputs and losses "
        "of order one). revlearn never wraps around silently.")


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
    remainders.  ``n`` and ``d`` are positive integers (at most 2**20), scalars
    or one per element.  ``name`` appears in error messages ("the velocity v").
    """

    def __init__(self, values, frac_bits=DEFAULT_FRAC_BITS, buffer=None, name=None):
        self.frac_bits = check_frac_bits(frac_bits, np.size(values))
        self._scale = 2.0 ** self.frac_bits      # a number, or one per element
        self._inv_scale = 2.0 ** -self.frac_bits
        self.name = name
        a = np.asarray(values)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"ExactArray holds real numbers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"ExactArray holds a flat 1-D array, got shape {a.shape}; "
                             "flatten parameters first (autograd.misc.flatten)")
        self.k = self.to_fixed(a, "the initial value")
        if buffer is None:
            buffer = InfoBuffer(len(self._k))
        elif isinstance(buffer, type) or not hasattr(buffer, "exchange"):
            raise TypeError(f"buffer must be a buffer instance such as InfoBuffer({len(a)}), "
                            f"got {buffer!r}")
        elif buffer.size != len(self._k):
            raise ValueError(f"the buffer holds {buffer.size} streams but the array has "
                             f"{len(self._k)} values: use InfoBuffer({len(self._k)})")
        self.buffer = buffer
        self.track_rounding = False       # when True, add/sub sample their rounding error
        self.rounding = np.zeros(2)       # [sum |rounding error|, sum |increment|], grid units

    @property
    def k(self):
        """The integers, read-only: every operation updates them in place, so copy them
        (``X.k.copy()``) to keep a snapshot, and assign a new array to replace them."""
        view = self._k.view()
        view.flags.writeable = False
        return view

    @k.setter
    def k(self, value):
        k = np.asarray(value)
        if not np.issubdtype(k.dtype, np.integer) or k.ndim != 1:
            raise TypeError(f"k must be a 1-D integer array, got {k.dtype} {k.shape}")
        if hasattr(self, "_k") and k.shape != self._k.shape:
            raise ValueError(f"k must keep its shape {self._k.shape}, got {k.shape}")
        k = k.astype(np.int64)           # a copy: nobody else can change it behind our back
        if k.size and (k.max() >= _LIMIT or k.min() <= -_LIMIT):
            raise self._overflow("setting k", k)
        self._k = k
        self._bound = float(np.max(np.abs(k))) if k.size else 0.0

    def reformat(self, frac_bits):
        """Change the fixed-point format of an all-zero array (nothing is lost: 0 is 0 on
        every grid).  ``frac_bits`` may give one value per element."""
        if self._k.any():
            raise ValueError("only an all-zero ExactArray can change its format without "
                             "losing information")
        self.frac_bits = check_frac_bits(frac_bits, len(self._k))
        self._scale = 2.0 ** self.frac_bits
        self._inv_scale = 2.0 ** -self.frac_bits

    def shift_grid(self, idx, delta):
        """Move elements ``idx`` to grids ``delta`` bits finer (delta > 0: k shifted left,
        nothing lost) or coarser (delta < 0: the dropped low bits pushed into the buffer,
        at most 16 per element).  ``unshift_grid(idx, delta)`` undoes it exactly; calls
        must be undone in reverse order, like every buffer operation."""
        idx = np.asarray(idx, dtype=np.intp)
        delta = np.asarray(delta, dtype=np.int64)
        bits = np.broadcast_to(self.frac_bits, self._k.shape).astype(np.int64)
        k = self._k[idx]
        if (delta >= 0).all():
            if (bits[idx] + delta > MAX_ELEMENT_FRAC_BITS).any() or \
                    (np.abs(k) >= (_LIMIT >> delta.clip(0, 62))).any():
                raise ValueError("shift_grid: the finer grid cannot hold these values")
            self._k[idx] = np.where(delta > 62, 0, k << np.minimum(delta, 62))
        else:
            drop = -delta
            if (drop > 16).any() or (delta > 0).any():
                raise ValueError("shift_grid coarsens by 1..16 bits, all elements one way")
            base = np.ones(len(self._k), dtype=np.int64)
            base[idx] = 1 << drop
            digits = np.zeros(len(self._k), dtype=np.int64)
            digits[idx] = k & ((1 << drop) - 1)           # non-negative: floor remainder
            self.buffer.push(digits, base)
            self._k[idx] = k >> drop
        bits[idx] += delta
        self._set_bits(bits)

    def unshift_grid(self, idx, delta):
        """Undo ``shift_grid(idx, delta)`` exactly."""
        from .errors import ReversalError
        idx = np.asarray(idx, dtype=np.intp)
        delta = np.asarray(delta, dtype=np.int64)
        bits = np.broadcast_to(self.frac_bits, self._k.shape).astype(np.int64)
        k = self._k[idx]
        if (delta >= 0).all():
            d = np.minimum(delta, 62)
            if ((k >> d) << d != k).any():
                raise ReversalError("undoing a finer grid would lose bits: the state is not "
                                    "the one that was refined")
            self._k[idx] = k >> d
        else:
            drop = -delta
            base = np.ones(len(self._k), dtype=np.int64)
            base[idx] = 1 << drop
            low = self.buffer.pop(base)
            self._k[idx] = (k << drop) + low[idx]
        bits[idx] -= delta
        self._set_bits(bits)

    def _set_bits(self, bits):
        self.frac_bits = bits
        self._scale = 2.0 ** bits
        self._inv_scale = 2.0 ** -bits
        self._bound = None

    @property
    def val(self):
        """The values as float64 (a new array; exact while |k| < 2**53)."""
        return self.values()

    def values(self, out=None):
        """The values as float64, written into ``out`` (a float64 array of the same length)
        if given: ``val`` without allocating, for loops that read them every step."""
        if out is None:
            out = np.empty(len(self._k))
        if kernels.ENABLED:
            kernels.scale_values(self._k, np.reshape(self._inv_scale, -1), out)
        else:
            np.multiply(self._k, self._inv_scale, out=out)
        return out

    def _what(self, what):
        return what if self.name is None else f"{what} ({self.name})"

    def _overflow(self, what, amounts, in_grid_units=True, named=False):
        """The OverflowError for the worst of ``amounts`` (integers k, or values)."""
        mags = np.abs(np.asarray(amounts, dtype=np.float64))
        # the worst element is the one furthest out of its own range (in grid units)
        units = mags if in_grid_units else mags * self._scale
        i = int(np.argmax(units)) if units.ndim else 0
        bits = self.frac_bits if np.ndim(self.frac_bits) == 0 else int(self.frac_bits[i])
        value = float(units.flat[i]) * 2.0 ** -bits
        return _overflow(what if named else self._what(what), bits, value)

    def to_fixed(self, a, what="an increment"):
        """Round a float array to integer multiples of 2**-frac_bits (a new int64 array)."""
        a = np.asarray(a, dtype=np.float64)
        scaled = a * self._scale
        self._check_scaled(scaled, what, a)
        return np.rint(scaled).astype(np.int64)

    def add(self, a, scale=1.0):
        """k += round(scale * a * 2**R): exact, and undone exactly by ``sub(a, scale)``.

        ``a`` is a float array or an ExactArray (``X.add(V, alpha)`` is x += alpha v)."""
        if kernels.ENABLED and self._compiled_increment(a, scale, 1, "adding the increment"):
            return
        inc, size = self._increment(a, scale, "adding the increment")
        np.add(self._k, inc, out=self._k)   # |k|, |inc| <= 2**62: no wrap-around possible
        self._after_increment(inc, size, np.subtract, "adding the increment")

    def sub(self, a, scale=1.0):
        """k -= round(scale * a * 2**R): the exact inverse of ``add(a, scale)``."""
        if kernels.ENABLED and self._compiled_increment(a, scale, -1,
                                                        "subtracting the increment"):
            return
        inc, size = self._increment(a, scale, "subtracting the increment")
        np.subtract(self._k, inc, out=self._k)
        self._after_increment(inc, size, np.add, "subtracting the increment")

    def mul(self, n, d):
        """Multiply by n/d exactly: the remainder k mod d goes into the buffer.

        The result is within max(1, n/d) grid steps of k * n / d (``InfoBuffer``;
        ``BigIntBuffer`` within n steps).  Checks n, d and the range before
        changing anything: a failed call leaves the array as it was."""
        self._check_fraction(n, d, "mul")
        self._rescale(n, d, "multiplying by n/d", growing=True)

    def div(self, n, d):
        """Divide by n/d exactly (the inverse of ``mul``); raises before overflowing.

        The new low digit is popped from the buffer, so dividing needs bits that
        earlier multiplies stored; with none there it raises BufferUnderflowError
        (an ``InfoBuffer`` notices only after its 8 bits of slack per stream:
        see ``revlearn.buffer``)."""
        self._check_fraction(n, d, "div")
        self._rescale(d, n, "dividing by n/d", growing=False)

    def _rescale(self, m, divisor, what, growing):
        """k <- floor(k / divisor) * m + (the remainder, pushed in base divisor, re-read in
        base m): a multiply by m/divisor whose lost digits live in the buffer."""
        if kernels.ENABLED and self._compiled_rescale(m, divisor, growing):
            return
        w = self._scratch()
        q, r = _floor_divmod(self._k, divisor, w["q"], w["r"])
        bound, verify = self._bound_after(q, m, divisor, self._what(what))
        # push r (base divisor), pop base m; 0 <= r < divisor by construction: no check
        np.multiply(q, m, out=self._k)     # k = q m + digit; q's space then takes the digits
        try:
            low = self.buffer.exchange(r, divisor, m, out=q, check=False)
        except BaseException:              # the buffer refused (underflow): put k back
            np.add(np.multiply(np.floor_divide(self._k, m, out=q), divisor, out=self._k), r,
                   out=self._k)
            raise
        np.add(self._k, low, out=self._k)
        if verify and self._k.min() <= -_LIMIT:   # only at the very edge of the range
            err = self._overflow(what, self._k)
            r = self.buffer.exchange(low, m, divisor)           # undo, digit by digit
            np.add(np.multiply(np.floor_divide(self._k, m), divisor), r, out=self._k)
            raise err
        self._bound = bound

    def _check_fraction(self, n, d, op):
        """n and d must be integers in 1..2**20 (scalars, or one per element)."""
        if isinstance(n, (int, np.integer)) and isinstance(d, (int, np.integer)) \
                and 1 <= n <= MAX_BASE and 1 <= d <= MAX_BASE \
                and not isinstance(n, bool) and not isinstance(d, bool):
            return                           # the common case, without numpy overhead
        for name, v in (("n", n), ("d", d)):
            a = np.asarray(v)
            if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"{op}(n, d): {name} must be an integer (a fraction n/d of "
                                f"whole numbers, e.g. to_rational(0.9) = (58982, 65536)), got "
                                f"{v!r:.60}")
            if a.ndim not in (0, 1) or (a.ndim == 1 and a.shape != self._k.shape):
                raise ValueError(f"{op}(n, d): {name} must be a scalar or have shape "
                                 f"{self._k.shape}, got shape {a.shape}")
            if a.size and (a.min() < 1 or a.max() > MAX_BASE):
                bad = int(a.min()) if a.min() < 1 else int(a.max())
                why = ("multiplying by 0 would erase the values, so nothing could undo it"
                       if name == "n" and bad == 0 else
                       "a fraction n/d needs d >= 1" if name == "d" and bad < 1 else
                       "n/d must be positive")
                if bad > MAX_BASE:
                    why = f"the information buffer takes digits of bases up to 2**20 = {MAX_BASE}"
                raise ValueError(f"{op}(n, d): {name} must lie in 1..{MAX_BASE}, got {bad}: "
                                 f"{why}")

    def _bound_after(self, q, m, divisor, what):
        """Before k becomes q * m + (a digit below m), q = floor(k / divisor): a bound on
        the new max|k|, and whether the result must be checked once the digit is known.
        From the running bound when that proves the result in range
        (|q m + digit| <= |k| m / divisor + 2 m), else from q itself, raising if the
        result cannot fit."""
        if _scalar(m) and _scalar(divisor):     # the common case, without numpy overhead
            m_max, ratio = float(m), float(m) / float(divisor)
        else:
            m_max, ratio = float(np.max(m)), float(np.max(np.asarray(m) / np.asarray(divisor)))
        if self._bound is not None:
            bound = (self._bound * ratio + 2 * m_max + 1) * _ROUND_UP
            if bound < _LIMIT:
                return bound, False
        if not q.size:
            return 0.0, False
        m = np.asarray(m, dtype=np.int64)
        # q m + digit < LIMIT needs q <= LIMIT // m - 1; q m + digit > -LIMIT holds for
        # q m > -LIMIT, and may hold at q m > -LIMIT - m (then the digit decides)
        top, bottom = _LIMIT // m - 1, -((_LIMIT + m - 1) // m)
        if m.ndim == 0:
            hi, lo = int(q.max()), int(q.min())
            ok, edge = hi <= top and lo >= bottom, lo * int(m) <= -_LIMIT
        else:
            ok = bool((q <= top).all() and (q >= bottom).all())
            edge = bool((q * m <= -_LIMIT).any()) if ok else False
        if not ok:
            raise self._overflow(what, q.astype(np.float64) * m, named=True)
        biggest = max(int(q.max()), -int(q.min()))
        return (biggest + 1.0) * m_max * _ROUND_UP, edge

    def _scratch(self):
        return _scratch(len(self._k))

    def _factors(self, a, scale, what):
        """(source array, factor s, a bound on |source * s| or None): the increment is
        round(source * s).  For an ExactArray ``a`` the source is its integers."""
        known = None
        scale = float(scale) if _scalar(scale) else np.asarray(scale, dtype=np.float64)
        if isinstance(a, ExactArray):   # a.k * 2**-R_a as floats, without a temporary
            if len(a) != len(self._k):
                raise ValueError(f"{what}: the ExactArray has {len(a)} values, this one "
                                 f"{len(self._k)}")
            factor = scale * (self._scale * a._inv_scale)
            if a._bound is not None:    # integers times a factor: finite, and this big at most
                known = a._bound * (abs(factor) if _scalar(factor)
                                    else float(np.max(np.abs(factor)))) * _ROUND_UP
            a, scale = a._k, factor * self._inv_scale
        elif np.ndim(a) != 0 and np.shape(a) != self._k.shape:
            raise ValueError(f"{what}: got an array of shape {np.shape(a)} for an ExactArray of "
                             f"shape {self._k.shape}")
        return a, scale * self._scale, known

    def _compiled_increment(self, a, scale, sign, what):
        """add/sub in one compiled pass (``revlearn.kernels``); False to use numpy instead
        (which also raises the errors: a failed kernel call changes nothing)."""
        src, s, _ = self._factors(a, scale, self._what(what))
        if np.ndim(src) != 1:
            return False
        src = src if src.dtype == np.int64 else np.asarray(src, dtype=np.float64)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        status, biggest = kernels.add_scaled(self._k, src, s, sign, _LIMIT)
        if status != kernels.OK:
            return False
        if self.track_rounding:
            step = max(1, len(src) // 256)
            self._sample_rounding(src[::step] * (s[0] if len(s) == 1 else s[::step]))
        self._bound = float(biggest)
        return True

    def _compiled_rescale(self, m, divisor, growing):
        """mul/div by n/d with d = 2**k in one compiled pass over k and an InfoBuffer's heads,
        when the running bound proves the result in range and the exchange is the exact
        mixed-radix one; False to use numpy instead."""
        buf = self.buffer
        if type(buf) is not InfoBuffer or self._bound is None:
            return False
        d, n = (divisor, m) if growing else (m, divisor)   # mul: k / d * n; div: k / n * d
        if not _scalar(d) or int(d) & (int(d) - 1) or np.ndim(n) > 1:
            return False
        n = np.asarray(n, dtype=np.int64).reshape(-1)
        d = int(d)
        if n.max() > d or exchange_plan(np.asarray(divisor, dtype=np.uint64),
                                        np.asarray(m, dtype=np.uint64)) is None:
            return False
        ratio = float(n.max()) / d if growing else float(d) / float(n.min())
        bound = (self._bound * ratio + 2 * float(np.max(m)) + 1) * _ROUND_UP
        if bound >= _LIMIT:
            return False
        shift = d.bit_length() - 1
        if growing:
            buf.reserve(len(self._k))
            buf._nwords = kernels.multiply(self._k, buf.head, buf._words, buf._nwords, n, shift,
                                           WORD_BITS, LOW_HEAD)
        else:
            w = self._scratch()
            status, nwords = kernels.divide(self._k, buf.head, buf._words, buf._nwords, n, shift,
                                            LOW_HEAD, WORD_BITS, w["q"], w["r"].view(np.uint64))
            if status != kernels.OK:
                return False
            buf._nwords = nwords
        self._bound = bound
        return True

    def _increment(self, a, scale, what):
        """round(scale * a * 2**R) as int64, in scratch space, after checking the range."""
        w = self._scratch()
        what = self._what(what)
        a, s, known = self._factors(a, scale, what)
        scale = s * self._inv_scale
        scaled = np.multiply(a, s, out=w["r"].view(np.float64))
        size = known if known is not None and known < _LIMIT else \
            self._check_scaled(scaled, what, a, scale)
        if self.track_rounding:
            self._sample_rounding(scaled)
        if size < _MAGIC_RANGE:
            # Round to nearest even by adding 1.5 * 2**52: the sum's low mantissa bits are
            # then the integer (np.rint + a float-to-int cast is slower: no SIMD for it).
            np.add(scaled, _MAGIC, out=scaled)
            return np.subtract(scaled.view(np.int64), _MAGIC_BITS, out=w["q"]), size
        np.rint(scaled, out=scaled)
        np.copyto(w["q"], scaled, casting="unsafe")  # integral and below 2**62: exact
        return w["q"], size

    def _sample_rounding(self, scaled):
        """Add the rounding error and size of (at most 256 of) the increments, in grid units,
        to ``rounding``: how much of each step the grid throws away."""
        sample = scaled[::max(1, len(scaled) // 256)]
        self.rounding[0] += float(np.sum(np.abs(np.rint(sample) - sample)))
        self.rounding[1] += float(np.sum(np.abs(sample)))

    def _check_scaled(self, scaled, what, original=None, scale=1.0):
        """The largest |value| in ``scaled``, after checking it is finite and in range."""
        if not scaled.size:
            return 0.0
        hi, lo = scaled.max(), scaled.min()   # NaN propagates into both
        if not (hi < _LIMIT and lo > -_LIMIT):
            source = scaled if original is None else np.asarray(original, dtype=np.float64)
            if not np.isfinite(source).all() or not np.isfinite(scale).all():
                raise FloatingPointError(f"{what} is not finite (NaN or inf); cannot store it "
                                         "exactly")
            with np.errstate(over="ignore"):
                values = np.broadcast_to(np.abs(source) * np.abs(scale), scaled.shape)
            raise self._overflow(what, values, in_grid_units=False, named=True)
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
            err = self._overflow(what, k)
            undo(k, inc, out=k)
            raise err
        self._bound = float(max(hi, -lo))

    def __len__(self):
        return len(self._k)

    def __repr__(self):
        return f"ExactArray({self.val!r}, frac_bits={self.frac_bits})"
