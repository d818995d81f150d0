"""Information buffers: per-parameter stacks of digits in varying bases.

Multiplying a fixed-point velocity by beta = n/d destroys information (the
remainder ``k mod d``).  An information buffer keeps it, so the multiply can be
undone.  Each parameter has its own stream; ``push(values, base)`` stores one
digit per parameter (``0 <= value < base``) and ``pop(base)`` takes the most
recent digits back out, like a stack.  Popping in base ``n`` *after* pushing in
base ``d`` hands back log2(n) of the log2(d) bits just stored, which is how the
buffer grows by only log2(d/n) = log2(1/beta) bits per multiply.

Two implementations with one interface:

* ``InfoBuffer`` -- the fast one: a vectorized rANS coder (one 64-bit head per
  parameter plus one shared stack of 32-bit words).  O(1) work per operation,
  within a tiny fraction of a percent of the entropy bound.
* ``BigIntBuffer`` -- the readable reference: one Python integer per parameter,
  ``store = store * base + value`` to push, ``divmod`` to pop (what the paper's
  code did).  Exact and optimal, but every push touches the whole integer.
"""
import math

import numpy as np

from .errors import BufferUnderflowError

PREC = 24                    # uniform symbols are coded with frequencies summing to 2**PREC
MAX_BASE = 1 << 20           # so each of up to 2**20 symbols keeps a frequency of >= 16
_HEAD_MIN = np.uint64(1 << 32)  # rANS heads live in [2**32, 2**64)
_HEAD_INIT = 1 << 40         # start 8 bits above the minimum: slack for quantization wobble
_P = np.uint64(PREC)
_MASK = np.uint64((1 << PREC) - 1)
_RENORM_SHIFT = np.uint64(64 - PREC)
_W = np.uint64(32)
_WMASK = np.uint64(0xFFFFFFFF)


def _check_base(base, size):
    b = np.asarray(base)
    if not np.issubdtype(b.dtype, np.integer):
        raise TypeError(f"base must be an integer or an integer array, got dtype {b.dtype}")
    if b.ndim not in (0, 1) or (b.ndim == 1 and b.shape[0] != size):
        raise ValueError(f"base must be a scalar or have shape ({size},), got shape {b.shape}")
    if (b < 1).any() or (b > MAX_BASE).any():
        raise ValueError(f"base must lie in 1..{MAX_BASE} (2**20), got values in "
                         f"{int(b.min())}..{int(b.max())}")
    return b.astype(np.int64)


def _check_values(values, base, size):
    """The digits as uint64, after checking 0 <= value < base (one pass)."""
    v = np.asarray(values)
    if v.shape != (size,):
        raise ValueError(f"values must have shape ({size},), one digit per parameter; got {v.shape}")
    if not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"values must be integers, got dtype {v.dtype}")
    u = v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64)
    if (u >= base.astype(np.uint64)).any():  # negatives wrap around to huge numbers
        raise ValueError("each pushed value must satisfy 0 <= value < base "
                         "(did you push k % d with a negative k and C-style remainder?)")
    return u


def _uniform_freq_start(base, symbol):
    """Frequency and cumulative start of ``symbol`` in a uniform code over ``base``
    symbols, quantized to a total of 2**PREC (the first ``r`` symbols get one extra)."""
    q = (1 << PREC) // base
    r = (1 << PREC) - q * base
    freq = q + (symbol < r)
    start = symbol * q + np.minimum(symbol, r)
    return freq.astype(np.uint64), start.astype(np.uint64)


def _symbol_of_slot(base, slot):
    """Inverse of the cumulative table: which symbol owns each slot in [0, 2**PREC)."""
    q = (1 << PREC) // base
    r = (1 << PREC) - q * base
    slot = slot.astype(np.int64)
    cut = r * (q + 1)
    return np.where(slot < cut, slot // (q + 1), r + (slot - cut) // q)


def _divmod_two_freqs(x, q, low):
    """x // f and x % f for f = q + 1 where ``low`` else q, with q a scalar.

    Two divisions by a scalar (fast in numpy) and an arithmetic blend are
    several times faster than one element-by-element division or np.where.
    """
    a, b = x // np.uint64(q + 1), x // np.uint64(q)
    m = low.astype(np.uint64)
    quot = b - (b - a) * m
    return quot, x - quot * (np.uint64(q) + m)


def _freq(base, v):
    """Frequency of digit(s) v in base ``base`` (scalar fast path for powers of two)."""
    if base.ndim == 0:
        M = int(base)
        q, r = (1 << PREC) // M, (1 << PREC) % M
        return np.uint64(q) if r == 0 else np.uint64(q) + (v < np.uint64(r))
    return _uniform_freq_start(base, v.astype(np.int64))[0]


def _encode(x, v, base):
    """rANS encode digits v into heads x (the caller has made room)."""
    if base.ndim == 0:
        M = int(base)
        q, r = (1 << PREC) // M, (1 << PREC) % M
        if r == 0:                          # power-of-two base: shifts, no division
            s = np.uint64(q.bit_length() - 1)
            return ((x >> s) << _P) | (x & np.uint64(q - 1)) | (v << s)
        quot, rem = _divmod_two_freqs(x, q, v < np.uint64(r))
        start = v * np.uint64(q) + np.minimum(v, np.uint64(r))
        return (quot << _P) + rem + start
    freq, start = _uniform_freq_start(base, v.astype(np.int64))
    return ((x // freq) << _P) + (x % freq) + start


def _decode(x, base):
    """rANS decode one digit per head: returns (new heads, digits); may leave heads < 2**32."""
    slot = x & _MASK
    if base.ndim == 0:
        M = int(base)
        q, r = (1 << PREC) // M, (1 << PREC) % M
        if r == 0:                          # power-of-two base: shifts, no division
            s = np.uint64(q.bit_length() - 1)
            return np.uint64(q) * (x >> _P) + (slot & np.uint64(q - 1)), slot >> s
        cut = np.uint64(r * (q + 1))
        m = slot < cut
        # below the cut symbols own q + 1 slots, above it q (unsigned wrap is masked)
        s1 = slot // np.uint64(q + 1)
        s2 = np.uint64(r) + (slot - cut) // np.uint64(q)
        symbol = s2 - (s2 - s1) * m
        start = symbol * np.uint64(q) + np.minimum(symbol, np.uint64(r))
        return (np.uint64(q) + m) * (x >> _P) + slot - start, symbol
    symbol = _symbol_of_slot(base, slot)
    freq, start = _uniform_freq_start(base, symbol)
    return freq * (x >> _P) + slot - start, symbol


class InfoBuffer:
    """Fast information buffer for ``size`` parameters (vectorized rANS).

    ``push(values, base)`` stores one digit per parameter; ``pop(base)`` returns
    the last digits pushed (when popped in the same base) as an int64 array;
    ``nbits`` is the information currently stored, in bits, all parameters
    together.  Push and pop are exact inverses, so any sequence of operations
    can be undone bit for bit.  ``base`` may be a scalar or one base per
    parameter (per-group momentum needs that).
    """

    def __init__(self, size):
        self.size = int(size)
        self.head = np.full(self.size, _HEAD_INIT, dtype=np.uint64)
        self._words = np.empty(max(1024, self.size), dtype=np.uint32)
        self._nwords = 0

    # Work in chunks: 64 kB temporaries are recycled by malloc and stay in cache,
    # where whole-array temporaries cost a page fault per 4 kB (2-3x slower).
    # Pushes write chunks' words in order, pops read them back in reverse order.
    _CHUNK = 8192

    def _chunks(self, reverse=False):
        starts = range(0, self.size, self._CHUNK)
        return [slice(lo, lo + self._CHUNK) for lo in (reversed(starts) if reverse else starts)]

    def push(self, values, base):
        base = _check_base(base, self.size)
        v = _check_values(values, base, self.size)
        for sl in self._chunks():
            b = base if base.ndim == 0 else base[sl]
            x, v_ = self.head[sl], v[sl]
            # Make room: heads that would leave 64 bits move their low 32 bits to the stack.
            full = (x >> _RENORM_SHIFT) >= _freq(b, v_)
            if full.any():
                self._write((x[full] & _WMASK).astype(np.uint32))
                x = x >> (full * _W)  # shift by 32 where full
            self.head[sl] = _encode(x, v_, b)

    def pop(self, base):
        base = _check_base(base, self.size)
        out = np.empty(self.size, dtype=np.int64)
        for sl in self._chunks(reverse=True):
            x, out[sl] = _decode(self.head[sl], base if base.ndim == 0 else base[sl])
            low = x < _HEAD_MIN
            if low.any():
                words = self._read(int(low.sum()))
                x[low] = (x[low] << _W) | words.astype(np.uint64)
            self.head[sl] = x
        return out

    def exchange(self, values, base_in, base_out, reverse=False):
        """``push(values, base_in)`` then ``pop(base_out)``, fused; returns the popped digits.

        ``exchange(popped, base_out, base_in, reverse=not reverse)`` undoes it
        exactly.  Fusing matters for the rational multiply (push 16 bits, pop
        15.85): done separately, a head in the upper half of its range must
        move a word to the stack for the push and take one back for the pop.
        Here such a head keeps its own word, so only the genuine overflows
        (about one every 210 steps per parameter at beta = 0.9) touch the stack.
        Why it inverts: a pop ends below 2**32 exactly when the inverse push
        must make room, and vice versa (rANS's renormalization symmetry).
        """
        a, b = _check_base(base_in, self.size), _check_base(base_out, self.size)
        v = _check_values(values, a, self.size)
        out = np.empty(self.size, dtype=np.int64)
        for sl in self._chunks(reverse):
            x, v_ = self.head[sl], v[sl]
            a_, b_ = (a if a.ndim == 0 else a[sl]), (b if b.ndim == 0 else b[sl])
            emit = (x >> _RENORM_SHIFT) >= _freq(a_, v_)        # push would overflow 64 bits
            word = x & _WMASK
            x, out[sl] = _decode(_encode(x >> (emit * _W), v_, a_), b_)  # shift 32 if emitting
            read = x < _HEAD_MIN                                  # pop leaves too few bits
            x = np.where(emit & read, (x << _W) | word, x)        # those keep their own word
            genuine_emit, genuine_read = emit > read, read > emit
            if genuine_emit.any():
                self._write(word[genuine_emit].astype(np.uint32))
            if genuine_read.any():
                words = self._read(int(genuine_read.sum()))
                x[genuine_read] = (x[genuine_read] << _W) | words.astype(np.uint64)
            self.head[sl] = x
        return out

    @property
    def nbits(self):
        """Bits stored beyond the initial state, summed over all parameters."""
        return 32.0 * self._nwords + float(np.sum(np.log2(self.head.astype(np.float64)))) \
            - self.size * math.log2(_HEAD_INIT)

    def _write(self, words):
        need = self._nwords + len(words)
        if need > len(self._words):
            grown = np.empty(max(need, 2 * len(self._words)), dtype=np.uint32)
            grown[:self._nwords] = self._words[:self._nwords]
            self._words = grown
        self._words[self._nwords:need] = words
        self._nwords = need

    def _read(self, count):
        if count > self._nwords:
            raise BufferUnderflowError(
                f"information buffer underflow: {count} words needed but only {self._nwords} "
                "stored. More was popped than was pushed -- pops must undo pushes in reverse "
                "order with the same bases (did the reverse pass run more steps than the forward "
                "pass, or use a different beta?).")
        self._nwords -= count
        return self._words[self._nwords:self._nwords + count].copy()

    def state(self):
        """A copy of the full state, for checking that a buffer came back to where it was."""
        return self.head.copy(), self._words[:self._nwords].copy()

    def is_empty(self):
        """True when the buffer is back in its initial state (nothing stored)."""
        return self._nwords == 0 and bool((self.head == np.uint64(_HEAD_INIT)).all())


class BigIntBuffer:
    """Reference information buffer: one Python integer per parameter.

    Same interface as ``InfoBuffer``.  A push is ``store = store * base + value``
    and a pop is ``store, value = divmod(store, base)``: a number written in a
    mixed-radix system.  Each store starts at 1 so that popping past the bottom
    is detectable (the leading 1 would be lost).
    """

    def __init__(self, size):
        self.size = int(size)
        self.store = np.array([1] * self.size, dtype=object)

    def push(self, values, base):
        base = _check_base(base, self.size)
        values = _check_values(values, base, self.size)
        self.store = self.store * base.astype(object) + values.astype(np.int64).astype(object)

    def pop(self, base):
        base = _check_base(base, self.size).astype(object)
        if (self.store < base).any():
            raise BufferUnderflowError(
                "information buffer underflow: a parameter's integer holds less than one digit "
                "of the requested base. More was popped than was pushed -- pops must undo pushes "
                "in reverse order with the same bases.")
        values = self.store % base
        self.store = self.store // base
        return values.astype(np.int64)

    def exchange(self, values, base_in, base_out, reverse=False):
        """``push(values, base_in)`` then ``pop(base_out)`` (``reverse`` is for
        interface compatibility with ``InfoBuffer``; order does not matter here)."""
        self.push(values, base_in)
        return self.pop(base_out)

    @property
    def nbits(self):
        """Bits stored, summed over all parameters (log2 of each integer)."""
        return float(sum(math.log2(s) for s in self.store))

    def state(self):
        """A copy of the integers, for checking that the buffer came back to where it was."""
        return self.store.copy()

    def is_empty(self):
        """True when every integer is back to its initial 1 (nothing stored)."""
        return all(s == 1 for s in self.store)
