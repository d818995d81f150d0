"""Optional compiled kernels for the exact arithmetic: ``pip install "revlearn[fast]"`` (numba).

The numpy code in ``fixedpoint.py`` and ``buffer.py`` is the reference.  Each numpy
operation there is a separate pass over the arrays (an exact multiply takes about
ten); these kernels do the same integer arithmetic in a few loops that the compiler
vectorizes, bit for bit (``tests/test_kernels.py`` runs random operation sequences
both ways and compares every integer, head and stack word).  They are used when
numba is installed, unless ``REVLEARN_KERNELS=numpy`` is set; ``ENABLED`` says which.
A kernel either completes or changes nothing and reports why (a status code); the
caller then runs the numpy path, which raises the error.

Integer division by the numerator n is the slow part of a multiply; here it is a
float multiplication by fl(1/n) (the operands are integers below 2**51, so the
estimate is within one of the true quotient) followed by a branch-free correction:
exact, and it vectorizes where integer division cannot.  Converting between int64
and float64 has a vector instruction only with AVX-512; on AVX2 machines (most
users') the compiler would convert element by element, so every conversion here is
done by exact bit arithmetic instead ("magic numbers": integers below 2**51 are the
low bits of a float near 1.5 * 2**52; wider ones are split into two halves).
"""
import os

import numpy as np

try:
    import numba
    from numba import types
    from numba.extending import intrinsic, overload
except ImportError:          # the numpy path is complete on its own
    numba = None

ENABLED = numba is not None and os.environ.get("REVLEARN_KERNELS", "numba") != "numpy"

OK, BAD_INCREMENT, RESULT_RANGE, UNDERFLOW = range(4)

if numba is not None:
    # numpy's error model: no Python zero-division checks, whose branches would stop the
    # loops from vectorizing (no division here can be by zero); small helpers inlined.
    _jit = numba.njit(cache=True, nogil=True, error_model="numpy")
    _inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")

    @intrinsic
    def _bits_of_float(typingctx, x):
        """The 64 bits of a float64 as an int64 (a free reinterpretation, no conversion)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))
        return types.int64(types.float64), codegen

    @intrinsic
    def _float_of_bits(typingctx, x):
        """The float64 whose 64 bits are those of an int64."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(types.int64), codegen

    _MAGIC = 6755399441055744.0             # 1.5 * 2**52: its ulp is 1, and it keeps the sign bit
    _MAGIC_BITS = np.int64(0x4338000000000000)

    @_inline
    def _float_small(k):
        """fl(k) for |k| < 2**51, exactly (the float is exact)."""
        return _float_of_bits(k + _MAGIC_BITS) - _MAGIC

    @_inline
    def _int_small(y):
        """round-half-even(y) as int64 for |y| < 2**51 (adding 1.5 * 2**52 rounds it)."""
        return _bits_of_float(y + _MAGIC) - _MAGIC_BITS

    @_inline
    def _float(k):
        """fl(k) for any int64, rounded to nearest as numpy's cast: both halves are exact
        floats, so their sum is rounded once."""
        return _float_small(k >> 32) * 4294967296.0 + _float_small(k & 0xFFFFFFFF)

    @_inline
    def _int(r):
        """The int64 equal to an integral float64 r with |r| <= 2**62, exactly."""
        h = np.floor(r * 2.0 ** -32)           # exact: a power-of-two scaling, then floor
        return (_int_small(h) << 32) + _int_small(r - h * 4294967296.0)

    def _value(a):
        """An increment's source element as a float64 (an ExactArray's integers are cast)."""
        return float(a)

    @overload(_value, inline="always")
    def _value_compiled(a):
        if isinstance(a, types.Integer):
            return lambda a: _float(a)
        return lambda a: a

    # Quotients are estimated by multiplying with inv = fl(1 / b), a third of the cost of
    # a float division, then corrected; all in floats, where every quantity is an integer
    # below 2**52 and so exact (AVX2 has no vector multiply of int64s).

    @_inline
    def _div_small(x, b, inv):
        """floor(x / b) and x mod b for |x| < 2**51, 1 <= b <= 2**20, inv = fl(1 / b): x * inv
        is within 0.375 of x / b for b >= 2 (relative error below 1.5 * 2**-52) and exact
        for b = 1, so the rounded estimate is the floor or one above it."""
        xf, bf = _float_small(x), _float_small(b)
        qf = np.rint(xf * inv)
        rf = xf - qf * bf                       # exact: |q b| < 2**52
        low = rf < 0.0
        qf = qf - 1.0 if low else qf
        rf = rf + bf if low else rf
        return _int_small(qf), _int_small(rf)

    @_inline
    def _floor_divmod(k, b, inv):
        """floor(k / b) and the non-negative remainder for any int64 k and b <= 2**20: long
        division in two digits of 2**20, each quotient small enough for ``_div_small``."""
        qh, rh = _div_small(k >> 20, b, inv)
        ql, r = _div_small((rh << 20) + (k & 0xFFFFF), b, inv)
        return (qh << 20) + ql, r

    @_inline
    def _rounded(y, flimit):
        """The increment y rounded to an int64 (0 if it is out of range or NaN), and whether
        it was."""
        bad = (abs(y) >= flimit) | (y != y)
        return _int(np.rint(0.0 if bad else y)), bad

    @_inline
    def _divided(kk, x, b, inv, shift):
        """One element of a division by b / 2**shift: (the new integer, the new head) from
        integer kk and head x (the digit below the remainder leaves the head in base b)."""
        mask = (np.int64(1) << shift) - 1
        q, r = _floor_divmod(kk, b, inv)
        o, c = _div_small((r << shift) + (x & mask), b, inv)
        return (q << shift) + o, (x >> shift) * b + c

    def _variants(per):
        """The kernels for one value per call (per=False) or one per element (per=True) of
        the scale or numerator: a compile-time constant, so no loop branches on it."""

        @_jit
        def add_scaled(k, a, s, sign, limit):
            # One pass in the common case; on failure a second pass takes the very same
            # increments back out (|k|, |increment| < 2**62: no sum can wrap).  The sign
            # goes into the float factor (rint(-y) = -rint(y)): no integer multiply.
            bad = False
            flimit = float(limit)
            fsign = float(sign)
            s0 = s[0] * fsign
            kmax = 0
            for i in range(len(k)):
                inc, b = _rounded(_value(a[i]) * (s[i] * fsign if per else s0), flimit)
                bad |= b
                v = k[i] + inc
                k[i] = v
                av = v if v >= 0 else -v
                kmax = av if av > kmax else kmax
            if bad or kmax >= limit:
                for i in range(len(k)):
                    k[i] -= _rounded(_value(a[i]) * (s[i] * fsign if per else s0), flimit)[0]
                return (BAD_INCREMENT if bad else RESULT_RANGE), 0
            return OK, kmax

        @_jit
        def multiply(k, head, words, nwords, n, shift, word_bits, low_head):
            size = len(k)
            d = np.int64(1) << shift
            mask = d - 1
            wbits = np.uint64(word_bits)
            wmask = np.uint64((1 << word_bits) - 1)
            inv0 = 1.0 / np.float64(n[0])
            for i in range(size):               # heads too full for the growth shed a word
                b = n[i] if per else n[0]
                x = head[i]
                if b < d and x >= np.uint64(((low_head >> shift) * b) << word_bits):
                    words[nwords] = np.uint16(x & wmask)
                    nwords += 1
                    head[i] = x >> wbits
            for i in range(size):
                b = n[i] if per else n[0]
                inv = 1.0 / np.float64(b) if per else inv0
                kk = k[i]
                A, B = _div_small(np.int64(head[i]), b, inv)
                S = (kk & mask) * b + B         # the remainder on top of the head's low digit
                head[i] = np.uint64((A << shift) + (S & mask))
                k[i] = (kk >> shift) * b + (S >> shift)
            return nwords

        @_jit
        def divide(k, head, words, nwords, n, shift, low_head, word_bits, qs, new_head):
            size = len(k)
            need = 0
            inv0 = 1.0 / np.float64(n[0])
            wbits = np.uint64(word_bits)
            low = np.uint64(low_head)
            if nwords >= size:                  # cannot underflow (one word per element at most):
                for i in range(size):           # in place, then the refills
                    b = n[i] if per else n[0]
                    inv = 1.0 / np.float64(b) if per else inv0
                    k[i], nh = _divided(k[i], np.int64(head[i]), b, inv, shift)
                    head[i] = np.uint64(nh)
                    need += np.int64(nh < low_head)
                top = nwords - need             # refills read the stack top in element order
                if need:
                    for i in range(size):
                        x = head[i]
                        if x < low:
                            head[i] = (x << wbits) | np.uint64(words[top])
                            top += 1
                return OK, nwords - need
            for i in range(size):               # into scratch first: nothing changes yet
                b = n[i] if per else n[0]
                inv = 1.0 / np.float64(b) if per else inv0
                qs[i], nh = _divided(k[i], np.int64(head[i]), b, inv, shift)
                new_head[i] = np.uint64(nh)
                need += np.int64(nh < low_head)
            if need > nwords:
                return UNDERFLOW, nwords
            top = nwords - need
            for i in range(size):
                x = new_head[i]
                if x < low:
                    x = (x << wbits) | np.uint64(words[top])
                    top += 1
                head[i] = x
                k[i] = qs[i]
            return OK, nwords - need

        @_jit
        def scale_values(k, s, out):
            for i in range(len(k)):
                out[i] = _float(k[i]) * (s[i] if per else s[0])

        return add_scaled, multiply, divide, scale_values

    _KERNELS = {per: _variants(per) for per in (False, True)}

    def add_scaled(k, a, s, sign, limit):
        """k += sign * round_half_even(a * s), ``s`` a 1-D array of one value or one per
        element.  Returns (status, max |k| afterwards); on any failure k is unchanged."""
        return _KERNELS[len(s) > 1][0](k, a, s, sign, limit)

    def multiply(k, head, words, nwords, n, shift, word_bits, low_head):
        """ExactArray.mul(n, 2**shift) with an InfoBuffer: k <- floor(k / d) n + digit, the
        remainder pushed in base d and the digit popped in base n (the exact mixed-radix
        exchange of ``buffer._exchange_digits``, with its word shedding).  ``n`` is a 1-D
        int64 array of one value or one per element, n <= d.  Returns the new word count
        (the caller has made room for one word per element)."""
        return _KERNELS[len(n) > 1][1](k, head, words, nwords, n, shift, word_bits, low_head)

    def divide(k, head, words, nwords, n, shift, low_head, word_bits, qs, new_head):
        """ExactArray.div(n, 2**shift), the inverse of ``multiply``: heads that fall below
        ``low_head`` take a word back from the stack top, in element order.  ``qs``,
        ``new_head``: int64/uint64 scratch.  Returns (status, new word count); on underflow
        nothing changes."""
        return _KERNELS[len(n) > 1][2](k, head, words, nwords, n, shift, low_head, word_bits,
                                       qs, new_head)

    def scale_values(k, s, out):
        """out <- k * s as float64 (ExactArray.values): the same cast and product as numpy's
        ``np.multiply(k, s, out=out)``, in one vectorized pass.  ``s`` is a 1-D float64
        array of one value or one per element."""
        return _KERNELS[len(s) > 1][3](k, s, out)
