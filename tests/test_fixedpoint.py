"""Fixed-point arithmetic: exact inverses, correct rounding, overflow never wraps."""
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from revlearn import BigIntBuffer, ExactArray, InfoBuffer, to_rational
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


def test_mul_lands_within_n_grid_steps_of_the_true_product():
    rng = np.random.default_rng(0)
    n, d = to_rational(0.9)
    X = ExactArray(rng.standard_normal(1000))
    k = X.k.copy()
    X.mul(n, d)
    exact = [mpmath.mpf(int(ki)) * int(n) / d for ki in k]
    err = np.array([float(int(kn) - e) for kn, e in zip(X.k, exact)])
    assert (np.abs(err) < n).all()


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
