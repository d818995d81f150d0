"""Adam run backwards: the naive failure law and the exact walk (revlearn.adam_reversal).

Oracles: the rational decays n/d (to_rational) for the bits, the engine's own
exactness check and a deliberately broken reversal for the walk, and the
measured growth of naive float reversal for the law.
"""
import math
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import pytest

import revlearn as rl
from revlearn.adam_reversal import (FLOAT_STATE_BITS, error_slope, exact_walk, loss_rate,
                                    predicted_failure_step, theoretical_bits)
from revlearn.widgets.reversal import predicted_failure_step as momentum_failure_step

from problems import tanh_regression


def test_the_faster_forgetting_average_sets_the_loss_rate():
    assert loss_rate(0.9, 0.999) == pytest.approx(math.log2(1 / 0.9))
    assert loss_rate(0.99, 0.5) == pytest.approx(1.0)
    assert predicted_failure_step(0.9, 0.999, 53) == pytest.approx(53 / math.log2(1 / 0.9))
    assert predicted_failure_step(0.8, 0.8, 24) == momentum_failure_step(0.8, 24)


def test_exact_bits_are_the_two_fractions():
    (n1, d), (n2, _) = rl.to_rational(0.9), rl.to_rational(0.999)
    m, s = theoretical_bits(0.9, 0.999)
    assert m == pytest.approx(math.log2(d / n1)) and s == pytest.approx(math.log2(d / n2))
    assert m + s == pytest.approx(0.1520 + 0.0014, abs=1e-4)
    assert FLOAT_STATE_BITS == 192


@pytest.mark.parametrize("call", [lambda: loss_rate(1.0, 0.9), lambda: loss_rate(0.9, 0.0),
                                  lambda: theoretical_bits(0.9, 1.2),
                                  lambda: predicted_failure_step(-0.1, 0.9, 53)])
def test_decays_outside_zero_one_are_refused(call):
    with pytest.raises(ValueError, match="must lie in"):
        call()


@pytest.mark.parametrize("b1, b2, grouped", [(0.9, 0.999, False), (0.5, 0.99, True),
                                             (0.95, 0.9, False)])
def test_exact_walk_recovers_every_state_and_stores_both_fractions(b1, b2, grouped):
    train_loss, _, x0 = tanh_regression(30, 1)
    T = 300
    if grouped:
        groups = np.arange(30) % 3
        opt = rl.Adam(np.full((T, 3), 0.01), np.full((T, 3), b1), np.full((T, 3), b2))
    else:
        groups = None
        opt = rl.Adam(np.full(T, 0.01), np.full(T, b1), np.full(T, b2))
    w = exact_walk(train_loss, x0, opt, groups=groups)
    assert w.exact and w.buffers_empty and w.T == T and w.n_params == 30
    assert not w.mismatches.any() and not w.errors.any()
    m, s = theoretical_bits(b1, b2)
    assert w.bits_per_step("m") == pytest.approx(m, rel=0.01)
    assert w.bits_per_step("s") == pytest.approx(s, rel=0.01)
    assert w.bits_per_step() == pytest.approx(m + s, rel=0.01)
    assert w.bits["m"][0] == 0 and len(w.bits["m"]) == T + 1


@dataclass
class BrokenAdam(rl.Adam):
    """Adam whose reverse pass puts one wrong integer into m_0: the walk must see it."""

    def bind(self, n_params, groups=None, denominator_bits=16):
        plan = super().bind(n_params, groups, denominator_bits)
        unstep = plan.exact_unstep_rest

        def broken(S, g, t):
            unstep(S, g, t)
            if t == 0:
                k = S[1].k.copy()
                k[0] += 1
                S[1].k = k
        plan.exact_unstep_rest = broken
        return plan


def test_exact_walk_sees_a_broken_reversal():
    train_loss, _, x0 = tanh_regression(5, 0)
    T = 20
    w = exact_walk(train_loss, x0, BrokenAdam(np.full(T, 0.01), np.full(T, 0.9),
                                              np.full(T, 0.999)))
    assert not w.exact
    assert w.mismatches[0] == 1 and not w.mismatches[1:].any()


def test_bits_per_step_needs_two_steps():
    train_loss, _, x0 = tanh_regression(3, 0)
    w = exact_walk(train_loss, x0, rl.Adam(np.full(4, 0.01), np.full(4, 0.9), np.full(4, 0.99)))
    with pytest.raises(ValueError, match="start"):
        w.bits_per_step(start=4)


def fixed_gradients(n_params, T, seed=0):
    """A loss whose gradient at step t is a fixed random vector: errors in x cannot feed
    back into the averages, so each one grows by exactly its own 1/beta."""
    G = np.random.default_rng(seed).standard_normal((T, n_params))
    return lambda x, meta, t: anp.dot(G[t], x)


@pytest.mark.parametrize("b1, b2", [(0.9, 0.999), (0.8, 0.8), (0.7, 0.8), (0.9, 0.8)])
def test_without_feedback_the_error_climbs_at_the_larger_rate_not_the_sum(b1, b2):
    T = 500
    r = rl.reverse_naive(fixed_gradients(30, T), np.ones(30), optimizer=rl.Adam(
        np.full(T, 0.01), np.full(T, b1), np.full(T, b2)), precision="float64")
    slope = error_slope(r)
    assert slope == pytest.approx(loss_rate(b1, b2), rel=0.05)
    if b1 == b2:   # the sum would be twice as fast
        assert slope < 0.6 * (math.log2(1 / b1) + math.log2(1 / b2))


@pytest.mark.parametrize("b1, b2", [(0.5, 0.999), (0.8, 0.999), (0.9, 0.999)])
def test_on_a_trained_model_the_error_climbs_near_the_predicted_rate(b1, b2):
    train_loss, _, x0 = tanh_regression(20, 0)
    T = 500
    r = rl.reverse_naive(train_loss, x0, optimizer=rl.Adam(np.full(T, 0.01), np.full(T, b1),
                                                           np.full(T, b2)), precision="float64")
    # the curvature couples x, m and s: the rate moves a little (0.85x measured at 0.9)
    assert error_slope(r) == pytest.approx(loss_rate(b1, b2), rel=0.2)
    assert r.steps_to_failure() == pytest.approx(predicted_failure_step(b1, b2, 53), rel=0.3)


def test_error_slope_of_a_reversal_that_never_grows_is_nan():
    train_loss, _, x0 = tanh_regression(4, 0)
    r = rl.reverse_naive(train_loss, x0, optimizer=rl.Adam(np.full(3, 0.01), np.full(3, 0.9),
                                                           np.full(3, 0.999)))
    assert math.isnan(error_slope(r))


def test_exact_walk_records_every_grid_and_the_final_weights():
    train_loss, _, x0 = tanh_regression(12, 2)
    T = 30
    opt = rl.Adam(np.full(T, 0.01), np.full(T, 0.9), np.full(T, 0.999))
    w = exact_walk(train_loss, x0, opt)
    run = rl.train_exact(train_loss, x0, optimizer=opt)
    np.testing.assert_array_equal(w.x_final, run.x_final)
    for name, E in zip("xms", run.state):
        np.testing.assert_array_equal(w.final[name], E.val)
    for name in ("x", "m"):              # one absolute grid, never moving
        assert w.frac_bits[name].shape == (T + 1, 12) and (w.frac_bits[name] == 48).all()
    fb = w.frac_bits["s"]
    assert fb.shape == (T + 1, 12) and (fb[0] == fb[0, 0]).all()
    finer, coarser = w.grid_moves("s")
    assert finer[0] == 12 and (fb[1] > fb[0]).all()   # first nonzero gradient: finer, everywhere
    assert len(finer) == len(coarser) == T


def growing_gradients(n_params, jump_at):
    """Gradients of 1e-3 that jump to 1e2 at step ``jump_at``: s grows by 1e10 and its
    grid has to coarsen, dropping low bits into s's buffer."""
    G = np.random.default_rng(1).standard_normal(n_params)
    return lambda x, meta, t: (1e-3 if t < jump_at else 1e2) * anp.dot(G, x)


def test_a_coarsening_grid_adds_its_dropped_bits_to_s_buffer_once_not_a_slope():
    T, n = 300, 20
    opt = rl.Adam(np.full(T, 0.01), np.full(T, 0.9), np.full(T, 0.99))
    w = exact_walk(growing_gradients(n, 200), np.ones(n), opt)
    assert w.exact
    finer, coarser = w.grid_moves("s")
    assert coarser[200] > 0 and coarser[:200].sum() == 0
    dropped = w.dropped_bits("s")
    assert dropped > 1                                   # bits per parameter, in total
    m, s = theoretical_bits(0.9, 0.99)
    # the buffer holds T log2(d/n2) plus exactly what the coarser grids dropped
    assert w.bits["s"][-1] == pytest.approx(T * s + dropped, rel=1e-4)
    # fitted across the jump, the slope is off; away from the moves it is the theory
    assert abs(w.bits_per_step("s") / s - 1) > 0.02
    assert w.bits_per_step("s", away_from_grid_moves=True) == pytest.approx(s, rel=1e-4)
    assert w.bits_per_step(away_from_grid_moves=True) == pytest.approx(m + s, rel=1e-4)
    # m's grid never moves, so cutting nothing changes nothing (to the fit's last digits,
    # which depend on the BLAS kernel behind polyfit)
    assert w.bits_per_step("m", away_from_grid_moves=True) == pytest.approx(w.bits_per_step("m"), rel=1e-12)
