"""Information buffers: per-parameter stacks of digits in varying bases.

Multiplying a fixed-point velocity by beta = n/d destroys information (the
remainder ``k mod d``).  An information buffer keeps it, so the multiply can be
undone.  Each parameter has its own stream; ``push(values, base)`` stores one
digit per parameter (``0 <= value < base``) and ``pop(base)`` takes the most
recent digits back out, like a stack.  ``exchange(values, d, n)`` pushes a digit
in base d and pops one in base n in a single step: the buffer grows by
log2(d/n) = log2(1/beta) bits, which is all a rational multiply needs.

Two implementations with one interface:

* ``InfoBuffer`` -- the fast one: one small integer "head" per parameter plus
  one shared stack of 16-bit words, all vectorized numpy.  ``push``/``pop`` are
  an rANS coder (any base); ``exchange`` with a power-of-two base (the d of
  every n/d revlearn uses) is exact mixed-radix arithmetic on the heads, a
  handful of array operations per call and no loss at all.
* ``BigIntBuffer`` -- the readable reference: one Python integer per parameter,
  ``store = store * base + value`` to push, ``divmod`` to pop (what the paper's
  code did).  Exact and optimal, but every push touches the whole integer.

Popping more than was pushed: ``BigIntBuffer`` raises ``BufferUnderflowError`` at
once.  ``InfoBuffer`` starts every stream with 8 bits of slack (its heads begin
at 2**36, 8 bits above their lower limit, so that rANS rounding can never make a
correct sequence of operations run dry), and raises only once a stream has
used up that slack as well: e.g. on the 9th ``pop(2)`` of a fresh buffer, or
the 53rd ``ExactArray.div(58982, 65536)`` (beta = 0.9, 0.152 bits each) with
nothing multiplied before.  Up to that point the popped digits are garbage,
never an error.  ``revlearn.hypergrad`` does not rely on the early error: it
checks that every buffer is back at exactly its initial state at the end
(``is_empty()``) and refuses to return a result otherwise.
"""
import math

import numpy as np

from .errors import BufferUnderflowError

PREC = 24                    # rANS codes a digit with frequencies summing to 2**PREC
MAX_BASE = 1 << 20           # so each of up to 2**20 symbols keeps a frequency of >= 16
WORD_BITS = 16               # the shared stack holds 16-bit words
_LOW = LOW_HEAD = 1 << 28   # heads live in [2**28, 2**44): 16 * 2**PREC and up, one word
                             # wide, and a head times any base (<= 2**20) fits in 64 bits
_HEAD_INIT = 1 << 36         # start 8 bits above the minimum: slack for rANS quantization wobble
_U = np.uint64
_P = _U(PREC)
_MASK = _U((1 << PREC) - 1)
_W = _U(WORD_BITS)
_WMASK = _U((1 << WORD_BITS) - 1)
_NEVER = _U(2**64 - 1)


def _check_base(base, size):
    if isinstance(base, (int, np.integer)) and not isinstance(base, bool):  # the common case
        if not 1 <= base <= MAX_BASE:
            raise ValueError(f"base must lie in 1..{MAX_BASE} (2**20), got {base}")
        return np.asarray(base, dtype=np.uint64)
    b = np.asarray(base)
    if not np.issubdtype(b.dtype, np.integer):
        raise TypeError(f"base must be an integer or an integer array, got dtype {b.dtype}")
    if b.ndim not in (0, 1) or (b.ndim == 1 and b.shape[0] != size):
        raise ValueError(f"base must be a scalar or have shape ({size},), got shape {b.shape}")
    if (b < 1).any() or (b > MAX_BASE).any():
        raise ValueError(f"base must lie in 1..{MAX_BASE} (2**20), got values in "
                         f"{int(b.min())}..{int(b.max())}")
    return b.astype(np.uint64)


def _check_values(values, base, size):
    """The digits as uint64, after checking 0 <= value < base (one pass)."""
    v = np.asarray(values)
    if v.shape != (size,):
        raise ValueError(f"values must have shape ({size},), one digit per parameter; got {v.shape}")
    if not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"values must be integers, got dtype {v.dtype}")
    u = v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64)
    if (u >= base).any():  # negatives wrap around to huge numbers
        raise ValueError("each pushed value must satisfy 0 <= value < base "
                         "(did you push k % d with a negative k and C-style remainder?)")
    return u


# ---- rANS with uniform digit frequencies: push and pop in any base ----------------

def _uniform_freq_start(base, symbol):
    """Frequency and cumulative start of ``symbol`` in a uniform code over ``base``
    symbols, quantized to a total of 2**PREC (the first ``r`` symbols get one extra)."""
    q = _U(1 << PREC) // base
    r = _U(1 << PREC) - q * base
    low = symbol < r
    return q + low, symbol * q + np.minimum(symbol, r)


def _freq(base, v):
    """Frequency of digit(s) v in base ``base`` (scalar fast path)."""
    if base.ndim == 0:
        q, r = divmod(1 << PREC, int(base))
        return _U(q) if r == 0 else _U(q) + (v < _U(r))
    return _uniform_freq_start(base, v)[0]


def _encode(x, v, base):
    """rANS: push digits v onto heads x (the caller has made room)."""
    if base.ndim == 0:
        M = int(base)
        q, r = divmod(1 << PREC, M)
        if r == 0:                          # power-of-two base: shifts, no division
            s = _U(q.bit_length() - 1)
            return ((x >> s) << _P) | (x & _U(q - 1)) | (v << s)
        # f = q + 1 for the first r digits, else q: two divisions by a scalar and a blend
        # are several times faster in numpy than one element-by-element division
        low = (v < _U(r)).astype(np.uint64)
        a, b = x // _U(q + 1), x // _U(q)
        quot = b - (b - a) * low
        return (quot << _P) + (x - quot * (_U(q) + low)) + v * _U(q) + np.minimum(v, _U(r))
    freq, start = _uniform_freq_start(base, v)
    return ((x // freq) << _P) + (x % freq) + start


def _decode(x, base):
    """rANS: pop one digit per head; returns (new heads, digits), heads maybe below 2**28."""
    slot = x & _MASK
    if base.ndim == 0:
        M = int(base)
        q, r = divmod(1 << PREC, M)
        if r == 0:
            s = _U(q.bit_length() - 1)
            return _U(q) * (x >> _P) + (slot & _U(q - 1)), slot >> s
        cut = _U(r * (q + 1))
        m = slot < cut
        # below the cut digits own q + 1 slots, above it q (unsigned wrap is masked)
        s1 = slot // _U(q + 1)
        s2 = _U(r) + (slot - cut) // _U(q)
        symbol = s2 - (s2 - s1) * m
        start = symbol * _U(q) + np.minimum(symbol, _U(r))
        return (_U(q) + m) * (x >> _P) + slot - start, symbol
    q = _U(1 << PREC) // base
    r = _U(1 << PREC) - q * base
    cut = r * (q + _U(1))
    symbol = np.where(slot < cut, slot // (q + _U(1)), r + (slot - cut) // q)
    freq, start = _uniform_freq_start(base, symbol)
    return freq * (x >> _P) + slot - start, symbol


# ---- exact mixed-radix exchange: the rational multiply's fast path ----------------

def exchange_plan(a, b):
    """``(limit, grows, shrinks)`` for ``exchange(., a, b)``, or None when the exact path
    does not apply to these bases.  Heads at or above ``limit`` must give a word to the
    stack first; ``grows``/``shrinks``: whether any head can shed or need words at all.

    The exchange turns a head x into about x * a / b.  That stays a bijection on
    heads in [2**28, 2**44) when the larger base divides 2**28 (we ask for a power
    of two, like every d = 2**k) and the bases differ by at most 2**16.  A growing
    head (a > b) then sheds a word at x >= 2**44 * b / a, an integer.
    """
    if a.ndim == 0 and b.ndim == 0:
        big, small = max(int(a), int(b)), min(int(a), int(b))
        if big & (big - 1) or big > small << WORD_BITS:
            return None
        if a > b:
            return _U((_LOW // int(a)) * int(b) << WORD_BITS), True, False
        return _NEVER, False, bool(a < b)
    big, small = np.maximum(a, b), np.minimum(a, b)
    if (big & (big - _U(1))).any() or (big > small << _W).any():
        return None
    return np.where(a > b, ((_U(_LOW) // a) * b) << _W, _NEVER), bool((a > b).any()), \
        bool((a < b).any())


def _exchange_digits(x, v, a, b, A=None, S=None, out=None):
    """Push digits v (base a) onto heads x and pop one in base b, exactly.

    With x = A b + B, the two low digits share one slot, S = v b + B in [0, a b):
    split the other way it is S = out a + c, and x becomes A a + c.  Because v
    sits on top of the slot, out is v * b / a rounded down (plus less than
    one): a rational multiply rounds almost exactly.  Swapping a and b undoes
    it.  Results go into ``A``, ``S``, ``out`` when given (uint64 scratch
    arrays); uint64 arithmetic wraps, but every final value is in range.
    """
    A = _floordiv(x, b, A)
    S = np.add(x, _times(np.subtract(v, A, out=S), b, S), out=S)   # S = v b + (x - A b)
    out = _floordiv(S, a, out)
    A = np.add(_times(np.subtract(A, out, out=A), a, A), S, out=A)  # A a + c = (A - out) a + S
    return A, out


def _floordiv(y, b, out=None):
    """y // b for uint64 y (a shift when b is a power-of-two scalar)."""
    if b.ndim == 0 and not int(b) & (int(b) - 1):
        return np.right_shift(y, _U(int(b).bit_length() - 1), out=out)
    return np.floor_divide(y, b, out=out)


def _times(y, a, out=None):
    """y * a modulo 2**64 (a shift when a is a power-of-two scalar)."""
    if a.ndim == 0 and not int(a) & (int(a) - 1):
        return np.left_shift(y, _U(int(a).bit_length() - 1), out=out)
    return np.multiply(y, a, out=out)


class InfoBuffer:
    """Fast information buffer for ``size`` parameters.

    ``push(values, base)`` stores one digit per parameter; ``pop(base)`` returns
    the last digits pushed (when popped in the same base) as an int64 array;
    ``exchange(values, a, b)`` pushes in base a and pops in base b at once;
    ``nbits`` is the information currently stored, in bits, all parameters
    together.  Every operation is exactly undone by its mirror image (pop by
    push, ``exchange(v, a, b)`` by ``exchange(out, b, a)``), so any sequence can
    be retraced bit for bit.  Bases may be scalars or one per parameter.
    """

    def __init__(self, size):
        self.size = int(size)
        self.head = np.full(self.size, _HEAD_INIT, dtype=np.uint64)
        self._words = np.empty(max(1024, self.size), dtype=np.uint16)
        self._nwords = 0
        self._spare = None          # two scratch arrays for exchange (allocated on first use)

    def push(self, values, base):
        base = _check_base(base, self.size)
        v = _check_values(values, base, self.size)
        # make room first: a head at or above freq * 2**20 would leave [2**28, 2**44)
        x, words = _shed(self.head, _freq(base, v) << _U(20))
        self._write(words)
        self.head = _encode(x, v, base)

    def pop(self, base):
        """The most recent digits, in base ``base`` (int64).  Popping more than was pushed
        raises ``BufferUnderflowError`` once a stream's 8 bits of slack are used up (see
        the module docstring); before that it returns meaningless digits."""
        base = _check_base(base, self.size)
        x, out = _decode(self.head, base)
        self.head = self._refill(x)
        return out.astype(np.int64)

    def exchange(self, values, base_in, base_out, out=None, check=True):
        """``push(values, base_in)`` then ``pop(base_out)`` in one step; returns the popped digits.

        ``exchange(popped, base_out, base_in)`` undoes it exactly.  When the
        larger base is a power of two (d = 2**k in a multiply by n/d) this is
        exact integer arithmetic on the heads (``_exchange_digits``), so the
        buffer grows by exactly log2(a/b) bits, and only the rare head that
        outgrows 44 bits moves a word to the stack (about once every 105 calls
        per parameter at beta = 0.9).  Other bases fall back to rANS ``push``
        then ``pop``.  ``out`` (an int64 array) receives the digits if given;
        ``check=False`` skips checking 0 <= values < base_in, for callers that
        guarantee it (an ExactArray's remainders).
        """
        a, b = _check_base(base_in, self.size), _check_base(base_out, self.size)
        v = _check_values(values, a, self.size) if check else values.view(np.uint64)
        plan = exchange_plan(a, b)
        if plan is None:
            head, nwords = self.head, self._nwords
            self.push(v, a)
            try:
                digits = self.pop(b)
            except BufferUnderflowError:    # undo the push: a failed call changes nothing
                self.head, self._nwords = head, nwords
                raise
            return digits if out is None else _copy_into(out, digits)
        if self._spare is None:
            self._spare = np.empty(self.size, dtype=np.uint64), np.empty(self.size, np.uint64)
        A, S = self._spare
        if out is not None and (out.shape != (self.size,) or out.dtype != np.int64):
            raise ValueError(f"out must be an int64 array of shape ({self.size},)")
        limit, grows, shrinks = plan
        head, words = self.head, ()
        if grows:   # the rare heads at or above the limit shed a word first
            shed = np.flatnonzero(head >= limit)
            if len(shed):
                top = head[shed]
                words = (top & _WMASK).astype(np.uint16)
                if shrinks:           # a failed refill must leave the buffer as it was
                    head = head.copy()
                head[shed] = top >> _W    # in place: the old heads become scratch below
        x, digits = _exchange_digits(head, v, a, b, A, S,
                                     None if out is None else out.view(np.uint64))
        if shrinks:
            x = self._refill(x, words)     # shrinking heads may take words back
        else:
            self._write(words)
        self._spare = head, S              # the old heads become scratch space
        self.head = x
        return digits.view(np.int64)

    @property
    def nbits(self):
        """Bits stored beyond the initial state, summed over all parameters."""
        return WORD_BITS * self._nwords + float(np.sum(np.log2(self.head.astype(np.float64)))) \
            - self.size * math.log2(_HEAD_INIT)

    def _refill(self, x, words=()):
        """Write ``words`` (shed earlier in this operation) to the stack; then heads that
        fell below 2**28 take words back (two if below 2**12: only bases above 2**16 do
        that).  The exact mirror image of ``_shed``.  Checks before changing anything."""
        low = np.flatnonzero(x < _U(_LOW))
        lower = low[x[low] < _U(_LOW >> WORD_BITS)]
        need = len(low) + len(lower)
        if need > self._nwords + len(words):
            raise BufferUnderflowError(
                f"information buffer underflow: {need} words needed but only "
                f"{self._nwords + len(words)} stored. More was popped than was pushed -- pops "
                "must undo pushes in reverse order with the same bases (did the reverse pass "
                "run more steps than the forward pass, or use a different beta?).")
        self._write(words)
        if len(lower):              # their second word was written last, so it comes first
            x[lower] = (x[lower] << _W) | self._read(len(lower))
        if len(low):
            x[low] = (x[low] << _W) | self._read(len(low))
        return x

    def reserve(self, count):
        """Make room on the stack for ``count`` more words without reallocating later."""
        need = self._nwords + count
        if need > len(self._words):
            grown = np.empty(max(need, 2 * len(self._words)), dtype=np.uint16)
            grown[:self._nwords] = self._words[:self._nwords]
            self._words = grown

    def _write(self, words):
        need = self._nwords + len(words)
        if need > len(self._words):
            grown = np.empty(max(need, 2 * len(self._words)), dtype=np.uint16)
            grown[:self._nwords] = self._words[:self._nwords]
            self._words = grown
        self._words[self._nwords:need] = words
        self._nwords = need

    def _read(self, count):
        self._nwords -= count
        return self._words[self._nwords:self._nwords + count].astype(np.uint64)

    def state(self):
        """A copy of the full state, for checking that a buffer came back to where it was."""
        return self.head.copy(), self._words[:self._nwords].copy()

    def is_empty(self):
        """True when the buffer is back in its initial state (nothing stored)."""
        return self._nwords == 0 and bool((self.head == _U(_HEAD_INIT)).all())


def _copy_into(out, digits):
    out[...] = digits
    return out


def _shed(x, limit):
    """Heads at or above ``limit`` give their low 16 bits to the stack (twice if at or
    above limit * 2**16: only bases above 2**16 do that).  Returns (heads, words)."""
    once = x >= limit
    if not once.any():
        return x, np.empty(0, dtype=np.uint16)
    twice = x >= (limit << _W) if np.min(limit) < _LOW else np.zeros_like(once)
    words = [(x[once] & _WMASK).astype(np.uint16)]
    x = x.copy()
    x[once] >>= _W
    if twice.any():             # written after the first words, so read back first
        words.append((x[twice] & _WMASK).astype(np.uint16))
        x[twice] >>= _W
    return x, np.concatenate(words)


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

    def exchange(self, values, base_in, base_out, out=None, check=True):
        """``push(values, base_in)`` then ``pop(base_out)`` (into ``out`` if given;
        ``check`` is accepted for ``InfoBuffer`` compatibility and always done here)."""
        store = self.store
        self.push(values, base_in)
        try:
            digits = self.pop(base_out)
        except BufferUnderflowError:    # a failed call changes nothing
            self.store = store
            raise
        return digits if out is None else _copy_into(out, digits)

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
