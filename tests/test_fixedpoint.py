"""Fixed-point arithmetic: exact inverses, correct rounding, overflow never wraps."""
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from revlearn import BigIntBuffer, BufferUnderflowError, ExactArray, InfoBuffer, to_rational
from revlearn.fixedpoint import value_range


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 20), steps=st.integers(1, 40),
       n=st.integers(1, 1 << 16), big=st.booleans())
def test_mul_then_div_restores_every_bit(seed, size, steps, n, big):
    rng = np.random.default_rng(seed)
    scale = 1000.0 if big else 1.0
    X = ExactArray(rng.standard_normal(size) * scale)
    k0 = X.k.copy()
    for _ in range(steps):
        X.mul(n, 1 << 16)
    for _ in range(steps):
        X.div(n, 1 << 16)
    np.testing.assert_array_equal(X.k, k0)
    assert X.buffer.is_empty()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 20))
def test_add_sub_are_exact_inverses(seed, size):
    rng = np.random.default_rng(seed)
    X = ExactArray(rng.standard_normal(size))
    k0 = X.k.copy()
    incs = [rng.standard_normal(size) * 10.0 ** rng.integers(-12, 3) for _ in range(10)]
    for a in incs:
        X.add(a)
    for a in reversed(incs):
        X.sub(a)
    np.testing.assert_array_equal(X.k, k0)


def test_values_round_to_nearest_grid_point_checked_with_mpmath():
    R = 20
    vals = np.array([0.1, -0.3, 1 / 3, 2.5e-7, -1e3])
    X = ExactArray(vals, frac_bits=R)
    for v, k in zip(vals, X.k):
        exact = mpmath.mpf(v) * 2**R  # mpmath: no float rounding in the oracle
        assert abs(mpmath.mpf(int(k)) - exact) <= 0.5


@pytest.mark.parametrize("Buffer, ulps", [(InfoBuffer, 1), (BigIntBuffer, 58982)])
def test_mul_lands_within_one_grid_step_of_the_true_product(Buffer, ulps):
    """InfoBuffer's slot puts the remainder on top of the popped digit: the product is
    rounded to within one grid step. The paper's big-integer scheme: within n steps."""
    rng = np.random.default_rng(0)
    n, d = to_rational(0.9)
    X = ExactArray(rng.standard_normal(1000), buffer=Buffer(1000))
    for _ in range(3):   # something in the buffer first, as in training
        X.mul(n, d)
    k = X.k.copy()
    X.mul(n, d)
    # the error in grid steps, times d: exact integer arithmetic (no float in the oracle)
    err = np.array([int(kn) * d - int(ki) * int(n) for kn, ki in zip(X.k, k)], dtype=float)
    assert (np.abs(err) < ulps * d).all()
    if ulps == 1:
        assert np.abs(err).max() > 0.5 * d   # it is a rounding, not magic


def test_per_element_numerators():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 1 << 16, 30)
    X = ExactArray(rng.standard_normal(30))
    k0 = X.k.copy()
    X.mul(n, 1 << 16)
    np.testing.assert_allclose(X.val, k0 * 2.0**-48 * n / 2**16, atol=n.max() * 2.0**-48)
    X.div(n, 1 << 16)
    np.testing.assert_array_equal(X.k, k0)


def test_works_on_the_reference_buffer_too():
    X = ExactArray(np.linspace(-2, 2, 7), buffer=BigIntBuffer(7))
    k0 = X.k.copy()
    for _ in range(20):
        X.mul(3, 7)
    for _ in range(20):
        X.div(3, 7)
    np.testing.assert_array_equal(X.k, k0)


def test_regression_repeated_division_by_half_raises_instead_of_wrapping():
    # The original code (R = 52) wrapped around silently after 11 divisions by 0.5.
    buf = InfoBuffer(1)
    for _ in range(4):  # division draws bits from the buffer: give it some
        buf.push(np.array([12345]), 1 << 16)
    X = ExactArray(np.array([1.0]), frac_bits=52, buffer=buf)
    seen = []
    with pytest.raises(OverflowError, match="fixed-point range") as info:
        for _ in range(11):
            X.div(1, 2)
            seen.append(X.val[0])
    assert len(seen) == 9  # 2**10 = 1024 is outside |x| < 2**10
    np.testing.assert_allclose(seen, [2.0 ** (i + 1) for i in range(9)], rtol=1e-12)
    assert "frac_bits" in str(info.value)
    assert X.val[0] > 0  # no wrap-around


def test_overflowing_addition_raises_and_leaves_the_array_unchanged():
    X = ExactArray(np.array([value_range(48) * 0.75]))
    k0 = X.k.copy()
    with pytest.raises(OverflowError, match=r"\|x\| < 2\*\*14"):
        X.add(np.array([value_range(48) * 0.5]))
    np.testing.assert_array_equal(X.k, k0)


def test_out_of_range_initial_value_raises():
    with pytest.raises(OverflowError):
        ExactArray(np.array([1e6]), frac_bits=48)


def test_nan_increment_raises():
    X = ExactArray(np.zeros(3))
    with pytest.raises(FloatingPointError, match="not finite"):
        X.add(np.array([0.0, np.nan, 0.0]))


def test_dividing_with_an_empty_buffer_underflows():
    from revlearn import BufferUnderflowError
    X = ExactArray(np.array([1.0]))
    with pytest.raises(BufferUnderflowError):
        for _ in range(10):
            X.div(1, 2)


def test_bad_construction():
    with pytest.raises(ValueError, match="1-D"):
        ExactArray(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="frac_bits"):
        ExactArray(np.zeros(2), frac_bits=0)


def test_rational_betas():
    n, d = to_rational([0.9, 1.0, 1e-9])
    assert d == 1 << 16
    assert list(n) == [58982, 65536, 1]
    assert math.isclose(58982 / 65536, 0.9, abs_tol=2**-17)
    for bad in (0.0, -0.1, 1.0001, np.nan):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            to_rational(bad)


def test_increments_round_to_nearest_even_on_both_paths():
    """Increments below 2**51 grid steps use the add-1.5*2**52 trick, larger ones np.rint:
    both must give exactly np.rint's answer, ties to even included."""
    rng = np.random.default_rng(7)
    R = 20
    steps = np.concatenate([rng.uniform(-1, 1, 200) * 10.0 ** rng.integers(0, 16, 200),
                            np.arange(-6, 7) + 0.5,                 # exact ties
                            [2.0**51 - 0.5, -(2.0**51) + 1.5, 2.0**51 + 2, -(2.0**52)]])
    for chunk in (steps[:-2], steps):    # all small (magic path), then with large ones
        X = ExactArray(np.zeros(len(chunk)), frac_bits=R)
        X.add(chunk * 2.0**-R)
        np.testing.assert_array_equal(X.k, np.rint(chunk).astype(np.int64))
        X.sub(chunk * 2.0**-R)
        np.testing.assert_array_equal(X.k, 0)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ops=st.lists(st.sampled_from("asmdK"), min_size=1,
                                                      max_size=30))
def test_overflow_is_caught_exactly_whatever_the_history(seed, ops):
    """Checks are skipped while a running bound on max|k| proves them unnecessary: compare
    every operation with Python integers near the edge of the range. An operation raises
    exactly when its true result would leave |k| < 2**62, and then changes nothing."""
    rng = np.random.default_rng(seed)
    R = 50
    buf = BigIntBuffer(3)
    for _ in range(4):         # bits in the buffer, so that divisions can run
        buf.push(rng.integers(0, 1 << 16, 3), 1 << 16)
    X = ExactArray(rng.uniform(-2000, 2000, 3), frac_bits=R, buffer=buf)
    limit = 1 << 62
    for op in ops:
        before = [int(k) for k in X.k]
        a = rng.uniform(-1, 1, 3) * 2.0 ** rng.integers(0, 13)
        if op in "as":
            inc = [int(v) for v in np.rint(a * 2.0**R).astype(np.int64)]
            want = [k + i if op == "a" else k - i for k, i in zip(before, inc)]
            call = (lambda: X.add(a)) if op == "a" else (lambda: X.sub(a))
        elif op == "m":
            want = [(k // 4) * 5 for k in before]     # growth: digits < 5 do not matter here
            call = lambda: X.mul(5, 4)
        elif op == "d":
            want = [(k // 3) * 4 for k in before]
            call = lambda: X.div(3, 4)
        else:
            X.k = X.k.copy()                           # a new array: the bound is forgotten
            continue
        too_big = any(abs(w) >= limit - 8 for w in want)
        fine = all(abs(w) < limit // 2 for w in want)
        try:
            call()
        except OverflowError:
            assert not fine, f"{op} raised though the result {want} fits"
            assert [int(k) for k in X.k] == before       # nothing changed
            continue
        assert not too_big, f"{op} gave {list(X.k)} instead of raising for {want}"
        assert all(-limit < int(k) < limit for k in X.k)


def test_multiplying_by_more_than_one_raises_before_overflowing():
    X = ExactArray(np.array([10000.0, -3.0]))
    for _ in range(3):
        X.mul(3, 4)
    with pytest.raises(OverflowError, match="multiplying by n/d"):
        for _ in range(10):
            X.mul(7, 4)
    assert abs(X.val[0]) < 2**14


@pytest.mark.parametrize("Buffer", [InfoBuffer, BigIntBuffer])
@pytest.mark.parametrize("n, d", [(3, 4), (5, 6), (4, 3)])   # exact path, rANS path, n > d
def test_a_division_that_underflows_leaves_the_array_as_it_was(Buffer, n, d):
    X = ExactArray(np.array([1.5, -2.25, 0.1]), buffer=Buffer(3))
    with pytest.raises(BufferUnderflowError):
        for _ in range(10_000):
            k, state = X.k.copy(), X.buffer.state()
            X.div(n, d) if n < d else X.mul(n, d)
    np.testing.assert_array_equal(X.k, k)
    b, s = X.buffer.state(), state
    assert all(np.array_equal(u, v) for u, v in zip(b, s)) if isinstance(b, tuple) \
        else all(u == v for u, v in zip(b, s))
