"""The optional compiled kernels do exactly what the numpy reference does, bit for bit."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from revlearn import ExactArray, InfoBuffer, kernels, to_rational

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="numba is not installed")


class _NumpyOnly:
    """Run a block with the kernels switched off."""

    def __enter__(self):
        kernels.ENABLED = False

    def __exit__(self, *exc):
        kernels.ENABLED = True


def _state(X):
    words = X.buffer._words[:X.buffer._nwords].copy()
    return X.k.copy(), X.buffer.head.copy(), words


def _apply(X, ops, rng_seed):
    """Run ``ops`` on X; returns the list of outcomes (None or the exception type)."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for op, arg in ops:
        try:
            if op == "add":
                X.add(rng.standard_normal(len(X)) * arg, 0.3)
            elif op == "sub":
                X.sub(rng.standard_normal(len(X)) * arg, 0.3)
            elif op == "addx":
                X.add(ExactArray(rng.standard_normal(len(X)) * arg), 0.7)
            elif op == "mul":
                X.mul(*arg)
            else:
                X.div(*arg)
            out.append(None)
        except (OverflowError, FloatingPointError, ArithmeticError, RuntimeError) as e:
            out.append(type(e))
    return out


OPS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["add", "sub", "addx"]),
              st.sampled_from([1e-3, 1.0, 1e3, 1e5, np.inf])),
    st.tuples(st.sampled_from(["mul", "div"]),
              st.sampled_from([tuple(int(v) for v in to_rational(b)) for b in
                               (0.9, 0.5, 0.999, 1.0, 0.01)] + [(3, 4), (7, 2)]))),
    min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(ops=OPS, size=st.integers(1, 300), seed=st.integers(0, 10**6),
       scale=st.sampled_from([1e-6, 1.0, 100.0]))
def test_random_operation_sequences_agree_bit_for_bit(ops, size, seed, scale):
    start = np.random.default_rng(seed).standard_normal(size) * scale
    A, B = ExactArray(start), ExactArray(start)
    got = _apply(A, ops, seed)
    with _NumpyOnly():
        want = _apply(B, ops, seed)
    assert got == want
    for a, b in zip(_state(A), _state(B)):
        np.testing.assert_array_equal(a, b)


def test_per_element_numerators_and_long_runs_agree():
    rng = np.random.default_rng(0)
    size, T = 500, 400
    n = rng.integers(30000, 65536, size)
    g = [rng.standard_normal(size) * 0.01 for _ in range(T)]
    runs = []
    for compiled in (True, False):
        kernels.ENABLED = compiled
        try:
            V = ExactArray(np.zeros(size), buffer=InfoBuffer(size))
            X = ExactArray(rng.standard_normal(size) if False else np.linspace(-1, 1, size))
            for t in range(T):
                V.mul(n, 65536)
                V.sub(g[t], 0.1)
                X.add(V, 0.3)
            snap = (X.k.copy(), V.k.copy(), V.buffer.head.copy(),
                    V.buffer._words[:V.buffer._nwords].copy())
            for t in reversed(range(T)):
                X.sub(V, 0.3)
                V.add(g[t], 0.1)
                V.div(n, 65536)
            runs.append(snap + (X.k.copy(), V.buffer.is_empty()))
        finally:
            kernels.ENABLED = True
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert runs[0][-1]


def test_a_failing_kernel_call_changes_nothing():
    X = ExactArray(np.ones(3))
    before = _state(X)
    with pytest.raises(RuntimeError):          # BufferUnderflowError: nothing was multiplied
        for _ in range(100):
            X.div(1, 2)
    X2 = ExactArray(np.ones(3))
    for _ in range(8):
        X2.div(1, 2)
    np.testing.assert_array_equal(X.k, X2.k)
    with pytest.raises(OverflowError):
        X.add(np.array([1.0, 1e10, 1.0]))
    np.testing.assert_array_equal(X.k, X2.k)
    assert before[0].shape == X.k.shape


def test_values_match_numpy_bit_for_bit():
    """ExactArray.values (the float view every step reads) equals numpy's k * 2**-R, for one
    format and for one format per element, including integers too big to be exact."""
    rng = np.random.default_rng(3)
    k = np.concatenate([rng.integers(-2**61, 2**61, 300), rng.integers(-2**40, 2**40, 300),
                        [0, 1, -1, 2**53 + 1, -(2**53 + 1), 2**61 + 3]])
    for bits in (32, rng.integers(1, 120, len(k))):
        X = ExactArray(np.zeros(len(k)), bits)
        X.k = k
        want = k * 2.0 ** -np.asarray(bits, dtype=np.float64)
        out = np.empty(len(k))
        got = X.values(out=out)
        assert got is out
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
        np.testing.assert_array_equal(X.val.view(np.int64), want.view(np.int64))
        with _NumpyOnly():
            np.testing.assert_array_equal(X.values().view(np.int64), want.view(np.int64))


def test_the_conversions_and_divisions_by_bit_arithmetic_are_exact():
    """The kernels convert int64 <-> float64 and divide by bit arithmetic (AVX2 has no vector
    instruction for either): against numpy's casts, np.rint and Python's integer division,
    at the edges of every range they claim."""
    import numba
    rng = np.random.default_rng(7)
    ks = np.concatenate([rng.integers(-2**62, 2**62, 2000), rng.integers(-2**52, 2**52, 500),
                         [0, 1, -1, 2**62, -2**62, 2**53 + 1, -(2**53 + 1), 2**63 - 1,
                          -2**63, 2**32 - 1, -2**32]]).astype(np.int64)

    @numba.njit
    def floats(k):
        return np.array([kernels._float(v) for v in k])

    np.testing.assert_array_equal(floats(ks).view(np.int64), ks.astype(np.float64).view(np.int64))
    ys = np.concatenate([rng.standard_normal(2000) * 2.0 ** rng.integers(-3, 62, 2000),
                         [0.5, 1.5, 2.5, -0.5, -2.5, 2.0**51 + 0.5, 2.0**52 - 0.5, -2.0**52 + 1.5,
                          2.0**62, -2.0**62, 2.0**53 + 2]])
    ys = ys[np.abs(ys) <= 2.0**62]

    @numba.njit
    def rounded(y):
        return np.array([kernels._rounded(v, 2.0**63)[0] for v in y])

    np.testing.assert_array_equal(rounded(ys), np.rint(ys).astype(np.int64))

    @numba.njit
    def divmods(k, b):
        q, r = np.empty_like(k), np.empty_like(k)
        for i in range(len(k)):
            q[i], r[i] = kernels._floor_divmod(k[i], b, 1.0 / np.float64(b))
        return q, r

    for b in (1, 2, 3, 655, 2047, 2048, 58982, 65535, 2**20):
        q, r = divmods(ks[np.abs(ks) < 2**62], b)
        want = [divmod(int(v), b) for v in ks[np.abs(ks) < 2**62]]
        assert [(int(a), int(c)) for a, c in zip(q, r)] == want, b
