"""Tests for revlearn.growth: buffer growth against log2(d/n), savings, n/d, memory."""
import math
from fractions import Fraction

import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn import growth


def test_theoretical_bits_match_the_papers_numbers():
    nominal, used = growth.theoretical_bits(0.9)
    assert nominal == pytest.approx(math.log(1 / 0.9) / math.log(2))
    assert used == pytest.approx(math.log2(65536 / 58982))       # 0.9 -> 58982/65536
    assert round(used, 3) == 0.152                               # paper: 0.152 bits at 0.9
    assert round(growth.theoretical_bits(0.98)[1], 3) == 0.029   # and 0.029 bits at 0.98


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.98])
def test_info_buffer_grows_by_log2_d_over_n_within_one_percent(beta):
    trace = growth.bits_trace(beta, T=200, n_params=100)
    n, d = rl.to_rational(beta)
    assert trace.theory == math.log2(d / int(n))
    assert trace.per_step == pytest.approx(trace.theory, rel=0.01)
    assert trace.bits_per_param[-1] / trace.T == pytest.approx(trace.theory, rel=0.01)


def test_bigint_buffer_grows_at_the_same_rate():
    # The big integers are optimal; a long run hides their start-up offset.
    big = growth.bits_trace(0.9, T=1000, n_params=10, buffer=rl.BigIntBuffer)
    fast = growth.bits_trace(0.9, T=1000, n_params=10)
    assert big.per_step == pytest.approx(big.theory, rel=0.01)
    assert abs(big.bits_per_param[-1] - fast.bits_per_param[-1]) < 2.0


def test_growth_rate_follows_the_fraction_not_the_nominal_beta():
    # beta = 0.9 with d = 2**3 is 7/8: the buffer grows by log2(8/7), not log2(1/0.9).
    trace = growth.bits_trace(0.9, T=200, n_params=100, denominator_bits=3)
    assert (trace.n, trace.d) == (7, 8)
    assert trace.per_step == pytest.approx(math.log2(8 / 7), rel=0.01)
    assert abs(trace.per_step - math.log2(1 / 0.9)) > 0.03


def test_beta_one_stores_nothing():
    trace = growth.bits_trace(1.0, T=50, n_params=10)
    assert np.all(trace.bits_per_param == 0)
    assert growth.savings_factor(0.0) == math.inf


def test_savings_factors():
    bits = growth.theoretical_bits(0.9)[1]
    assert growth.savings_factor(bits, 32) == pytest.approx(32 / bits)
    assert round(growth.savings_factor(bits, "float32")) == 211   # the paper: "about 210x"
    assert round(growth.savings_factor(bits, "float64")) == 421
    with pytest.raises(ValueError):
        growth.savings_factor(-0.1)


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan")])
def test_bad_beta_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="beta"):
        growth.bits_trace(bad, T=5)
    with pytest.raises(ValueError, match="beta"):
        growth.theoretical_bits(bad)


def test_rational_table_is_the_closest_fraction():
    beta = 0.9
    tab = growth.rational_table(beta, range(1, 21))
    exact = Fraction(beta)                  # the float 0.9 exactly, as a fraction
    for k, n, d, err in zip(tab["denominator_bits"], tab["n"], tab["d"], tab["error"]):
        n, d = int(n), int(d)
        assert d == 2 ** k
        below = math.floor(exact * d)       # the closest fraction m/d is m = floor or floor + 1
        best = min((below, below + 1), key=lambda m: abs(exact - Fraction(m, d)))
        assert n == best
        assert err <= 0.5 / d
    assert tab["bits"][-1] == pytest.approx(tab["nominal_bits"][-1], rel=1e-4)
    assert tab["bits"][0] == 0.0    # d = 2: 0.9 rounds to 2/2 = 1, no decay at all


@pytest.fixture(scope="module")
def small_problem():
    data = rl.digits_splits(n_train=200, n_valid=200, seed=0)
    net = rl.logistic_regression(64, 10)

    def train_loss(x, meta, t):
        inputs, targets = data.train.batch(t, 50)
        return net.loss(x, inputs, targets)

    def meta_loss(x, meta):
        return net.loss(x, data.valid.inputs, data.valid.targets)
    return train_loss, meta_loss, net.init(0.1, seed=0)


def test_trace_from_real_training_matches_theory(small_problem):
    train_loss, meta_loss, x0 = small_problem
    T = 40
    trace, res = growth.bits_trace_training(train_loss, meta_loss, x0, np.full(T, 1.0),
                                            np.full(T, 0.9))
    assert res.exact and trace.T == T
    assert trace.bits_per_param[-1] * len(x0) == pytest.approx(res.buffer_bits)
    assert trace.per_step == pytest.approx(trace.theory, rel=0.01)


def test_rounding_effect_is_predicted_by_the_beta_hypergradient(small_problem):
    train_loss, meta_loss, x0 = small_problem
    alphas = np.full(30, 1.0)
    fine = growth.rounding_effect(train_loss, meta_loss, x0, alphas, 0.9, denominator_bits=16)
    coarse = growth.rounding_effect(train_loss, meta_loss, x0, alphas, 0.9, denominator_bits=8)
    assert fine.beta_used == 58982 / 65536
    # Float training with the nominal beta is an independent oracle for the first-order prediction.
    assert fine.loss_change == pytest.approx(fine.predicted_loss_change, rel=0.02)
    assert 0 < fine.weight_change < coarse.weight_change / 100


def test_unrolled_tape_grows_with_T_while_exact_stays_flat(small_problem):
    train_loss, meta_loss, x0 = small_problem
    short = growth.memory_comparison(train_loss, meta_loss, x0, np.ones(5), np.full(5, 0.9))
    long = growth.memory_comparison(train_loss, meta_loss, x0, np.ones(20), np.full(20, 0.9))
    assert long.unrolled_bytes > 2.5 * short.unrolled_bytes
    assert long.exact_bytes < 1.5 * short.exact_bytes
    assert long.ratio > short.ratio > 1
    assert long.buffer_bytes == pytest.approx(4 * short.buffer_bytes, rel=0.05)


def test_stored_float_bytes():
    assert growth.stored_float_bytes(650, 100, 64) == 650 * 100 * 8
    assert growth.stored_float_bytes(650, 100, 32) == 650 * 100 * 4


@pytest.mark.parametrize("buffer", [rl.InfoBuffer, rl.BigIntBuffer])
def test_time_steps_reports_the_buffer_filling(buffer):
    st = growth.time_steps(buffer, 0.5, T=50, n_params=20, block=20)
    assert list(st.steps) == [20, 40, 50]
    assert np.all(st.seconds_per_step > 0)
    assert st.bits_per_param[-1] == pytest.approx(50.0, abs=2.0)   # beta = 1/2: one bit per step
    assert growth.time_float_steps(0.5, 10, 20) > 0


def test_memory_left_behind_tells_free_lists_from_kept_data():
    def keeps_an_array():
        return np.ones(125_000)          # 1 MB that the caller keeps

    kept, m = growth.memory_left_behind(keeps_an_array)
    # (gc.collect itself, and threads that JAX or numba started, may allocate a few bytes)
    assert m.held_after_gc >= 1_000_000 and m.peak >= m.held >= m.held_after_gc - 4096
    assert kept.nbytes == 1_000_000

    def churns_small_tuples():
        junk = [(i,) for i in range(20_000)]     # freed on return: onto the tuple free list
        del junk

    _, m = growth.memory_left_behind(churns_small_tuples)
    assert m.peak > 500_000                      # 20,000 one-item tuples and the list
    # Nothing is kept, yet CPython keeps freed tuples on its free list (2,000 of each length:
    # 96 kB of one-item tuples), which tracemalloc counts until gc.collect() empties it. This is
    # what notebook 04 says about exact reversal's memory at short T.
    assert m.held_after_gc < 10_000
    assert m.held - m.held_after_gc > 50_000


def test_memory_left_behind_leaves_tracing_as_it_found_it():
    import tracemalloc
    assert not tracemalloc.is_tracing()
    growth.memory_left_behind(lambda: None)
    assert not tracemalloc.is_tracing()
