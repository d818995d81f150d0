"""Information buffers: exact inversion, growth at the entropy bound, clear errors."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from revlearn import BigIntBuffer, BufferUnderflowError, InfoBuffer

BUFFERS = [InfoBuffer, BigIntBuffer]


def _same_state(a, b):
    if isinstance(a, tuple):
        return all(np.array_equal(x, y) for x, y in zip(a, b))
    return all(x == y for x, y in zip(a, b))


@pytest.mark.parametrize("Buffer", BUFFERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_interleavings_invert_exactly(Buffer, data):
    size = data.draw(st.integers(1, 12))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    buf = Buffer(size)
    for _ in range(4):  # some content first, so that pops have something to take
        buf.push(rng.integers(0, 1 << 16, size), 1 << 16)
    start = buf.state()
    ops = data.draw(st.lists(st.tuples(st.booleans(), st.integers(2, 1 << 16),
                                       st.booleans()), min_size=1, max_size=60))
    log = []
    try:
        for is_push, base, per_param in ops:
            b = rng.integers(2, base + 1, size) if per_param else base
            if is_push:
                vals = rng.integers(0, b, size)
                buf.push(vals, b)
            else:
                vals = buf.pop(b)
                assert ((0 <= vals) & (vals < b)).all()
            log.append((is_push, b, vals))
    except BufferUnderflowError:
        assume(False)
    for is_push, b, vals in reversed(log):
        if is_push:
            np.testing.assert_array_equal(buf.pop(b), vals)
        else:
            buf.push(vals, b)
    assert _same_state(buf.state(), start)


@pytest.mark.parametrize("Buffer", BUFFERS)
@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9, 0.98, 0.999])
def test_growth_is_log2_d_over_n_per_multiply(Buffer, beta):
    d = 1 << 16
    n = round(beta * d)
    size, steps = 200, 300
    rng = np.random.default_rng(1)
    k = rng.integers(-(2**40), 2**40, size)
    buf = Buffer(size)
    for _ in range(4):  # a few stored digits, so the reference's integers are not tiny
        buf.push(rng.integers(0, d, size), d)
    bits = [buf.nbits]
    for _ in range(2):
        for _ in range(steps):
            buf.push(np.mod(k, d), d)
            k = np.floor_divide(k, d) * n + buf.pop(n)
        bits.append(buf.nbits)
    ideal = math.log2(d / n)
    # growth per step (slope), and the total including the start-up constant
    assert (bits[2] - bits[1]) / (size * steps) == pytest.approx(ideal, rel=0.01)
    excess = (bits[2] - bits[0]) / size - 2 * steps * ideal
    assert -8 < excess < 64  # a constant: heads may dip into their 8 spare bits


@pytest.mark.parametrize("Buffer", BUFFERS)
def test_nothing_lost_means_no_growth(Buffer):
    buf = Buffer(5)
    for _ in range(50):  # beta = 1: n = d
        buf.push(np.arange(5), 1 << 16)
        buf.pop(1 << 16)
    assert buf.nbits == pytest.approx(0.0, abs=1e-9)
    assert buf.is_empty()


@pytest.mark.parametrize("Buffer", BUFFERS)
def test_pop_from_empty_buffer_raises_underflow(Buffer):
    buf = Buffer(3)
    with pytest.raises(BufferUnderflowError, match="more was popped than was pushed|More was popped"):
        buf.pop(1 << 16)


@pytest.mark.parametrize("Buffer", BUFFERS)
def test_popping_more_than_pushed_eventually_underflows(Buffer):
    buf = Buffer(2)
    buf.push(np.array([1, 2]), 3)
    with pytest.raises(BufferUnderflowError):
        for _ in range(100):
            buf.pop(1 << 16)


@pytest.mark.parametrize("Buffer", BUFFERS)
def test_bad_pushes_get_clear_errors(Buffer):
    buf = Buffer(3)
    with pytest.raises(ValueError, match="0 <= value < base"):
        buf.push(np.array([0, 5, 1]), 5)
    with pytest.raises(ValueError, match="0 <= value < base"):
        buf.push(np.array([0, -1, 1]), 5)
    with pytest.raises(ValueError, match="shape"):
        buf.push(np.array([0, 1]), 5)
    with pytest.raises(ValueError, match="base must lie"):
        buf.push(np.array([0, 0, 0]), 0)
    with pytest.raises(TypeError, match="integer"):
        buf.push(np.array([0.5, 0, 0]), 5)


def test_fast_and_reference_buffers_agree_on_bits():
    rng = np.random.default_rng(3)
    fast, ref = InfoBuffer(50), BigIntBuffer(50)
    for _ in range(100):
        base = rng.integers(2, 1 << 16, 50)
        vals = rng.integers(0, base)
        fast.push(vals, base)
        ref.push(vals, base)
    # both store the same information; rANS within a fraction of a percent (+ its small constant)
    assert fast.nbits == pytest.approx(ref.nbits, rel=0.01)


def _base_pair(draw, rng, size):
    """Bases (a, b) for an exchange: arbitrary ones (rANS push then pop), or a power of
    two against anything within 2**16 of it, either way round, scalar or one per
    parameter, with some parameters growing and others shrinking (the exact path)."""
    kind = draw(st.sampled_from(["any", "any", "pow2", "pow2", "mixed"]))
    if kind == "any":
        a, b = draw(st.integers(2, 1 << 20)), draw(st.integers(2, 1 << 20))
        return (rng.integers(2, a + 1, size) if draw(st.booleans()) else a), b
    k = draw(st.integers(1, 20))
    d = 1 << k
    lo = max(1, d >> 16)
    if kind == "pow2":
        n = rng.integers(lo, d + 1, size) if draw(st.booleans()) else draw(st.integers(lo, d))
        return (d, n) if draw(st.booleans()) else (n, d)
    n = rng.integers(lo, d + 1, size)
    grow = rng.random(size) < 0.5
    return np.where(grow, d, n), np.where(grow, n, d)


@pytest.mark.parametrize("Buffer", BUFFERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_exchange_is_undone_by_the_swapped_exchange(Buffer, data):
    """Random push-then-pop exchanges, then undone in reverse order with the bases swapped."""
    size = data.draw(st.sampled_from([1, 7, 40_000]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    buf = Buffer(size)
    for _ in range(3):
        buf.push(rng.integers(0, 1 << 16, size), 1 << 16)
    start = buf.state()
    n_steps = data.draw(st.integers(1, 25))
    log = []
    try:
        for _ in range(n_steps):
            a, b = _base_pair(data.draw, rng, size)
            vals = rng.integers(0, a, size)
            out = buf.exchange(vals, a, b)
            assert ((0 <= out) & (out < b)).all()
            log.append((vals, a, b, out))
    except BufferUnderflowError:
        assume(False)
    for vals, a, b, out in reversed(log):
        np.testing.assert_array_equal(buf.exchange(out, b, a), vals)
    assert _same_state(buf.state(), start)


@pytest.mark.parametrize("bases", [(3, 4), (5, 1 << 16)])  # exact path, rANS fallback
def test_a_failed_exchange_leaves_the_buffer_as_it_was(bases):
    """Dividing by 3/4 with nothing multiplied in first runs the buffer dry: the call
    that underflows raises and changes nothing, so the state can still be inspected."""
    buf = InfoBuffer(4)
    buf.push(np.arange(4), 1 << 16)
    with pytest.raises(BufferUnderflowError):
        for _ in range(1000):
            state = buf.state()
            buf.exchange(np.arange(4) % bases[0], *bases)
    assert _same_state(buf.state(), state)


def test_exchange_stores_exactly_log2_d_over_n_and_no_more_than_push_then_pop():
    rng = np.random.default_rng(5)
    fused, split_ = InfoBuffer(30_000), InfoBuffer(30_000)
    k = rng.integers(-(2**40), 2**40, 30_000)
    k1, k2 = k.copy(), k.copy()
    for _ in range(500):
        k1 = (k1 >> 16) * 58982 + fused.exchange(k1 & 0xFFFF, 1 << 16, 58982)
        split_.push(k2 & 0xFFFF, 1 << 16)
        k2 = (k2 >> 16) * 58982 + split_.pop(58982)
    ideal = 500 * 30_000 * math.log2((1 << 16) / 58982)
    # exact arithmetic on the heads: a constant of a few bits per parameter at most
    assert ideal - 8 * 30_000 < fused.nbits < ideal + 8 * 30_000
    assert fused.nbits == pytest.approx(ideal, rel=1e-4)
    assert fused.nbits <= split_.nbits <= 1.01 * ideal   # rANS: quantized, within 1%


def test_a_failed_mixed_exchange_leaves_the_buffer_as_it_was():
    """One head grows and sheds a word while two shrink and need two words from a stack
    that only has the shed one: the call raises and neither heads nor stack have changed."""
    buf = InfoBuffer(3)
    buf.head = np.array([2**44 - 1, 2**28, 2**28], dtype=np.uint64)  # about to shed / floor
    before = buf.state()
    with pytest.raises(BufferUnderflowError):
        buf.exchange(np.array([1, 1, 1]), np.array([4, 3, 3]), np.array([3, 4, 4]))
    assert _same_state(buf.state(), before)
    buf.head[2] = 2**40          # with one shrinking head the shed word is enough
    out = buf.exchange(np.array([1, 1, 1]), np.array([4, 3, 3]), np.array([3, 4, 4]))
    np.testing.assert_array_equal(buf.exchange(out, np.array([3, 4, 4]), np.array([4, 3, 3])),
                                  [1, 1, 1])
    assert buf.head[0] == 2**44 - 1 and buf.head[1] == 2**28
