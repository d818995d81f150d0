"""Why plain SGD does not reverse: preimages of a step, and the fixed-point iteration.

Oracles: the forward SGD step itself (every preimage must map onto x_{t+1}),
closed forms for a quadratic loss, and numpy's eigenvalues of a known Hessian.
"""
import autograd.numpy as anp
import numpy as np
import pytest

from revlearn.sgd_inversion import (double_well_curvature, double_well_grad,
                                    double_well_preimages, invert_sgd_step, largest_curvature)


def sgd_step(x, alpha):
    return x - alpha * double_well_grad(x)


@pytest.mark.parametrize("x_next, alpha", [(0.0, 0.5), (0.3, 0.5), (-0.2, 1.0), (0.05, 0.2)])
def test_three_different_weights_land_on_the_same_point(x_next, alpha):
    pre = double_well_preimages(x_next, alpha)
    assert len(pre) == 3 and len(np.unique(np.round(pre, 9))) == 3
    np.testing.assert_allclose(sgd_step(pre, alpha), x_next, atol=1e-12)


def test_the_worked_example_is_zero_and_plus_minus_root_three():
    np.testing.assert_allclose(double_well_preimages(0.0, 0.5), [-np.sqrt(3), 0, np.sqrt(3)],
                               atol=1e-12)


def test_starts_merge_inside_sgds_stable_range_too():
    """Merging needs alpha L'' >= 1 between the two starts (the step's slope 1 - alpha L''
    must vanish there), not alpha L'' > 2: near x = 1 two starts with alpha L'' < 2 merge."""
    alpha = 0.5
    pre = double_well_preimages(0.98, alpha)
    near = pre[pre > 0]
    assert len(pre) == 3 and len(near) == 2
    np.testing.assert_allclose(sgd_step(near, alpha), 0.98, atol=1e-12)
    assert (alpha * double_well_curvature(near) < 2).all()
    assert alpha * double_well_curvature(near).min() < 1 < alpha * double_well_curvature(near).max()
    assert alpha * double_well_curvature(np.sqrt(3)) == pytest.approx(4)
    # the finite-difference slope of the step agrees with 1 - alpha L''
    x, h = 1.3, 1e-6
    assert (sgd_step(x + h, alpha) - sgd_step(x - h, alpha)) / (2 * h) == \
        pytest.approx(1 - alpha * double_well_curvature(x), rel=1e-8)


def test_far_from_the_wells_the_step_has_one_preimage():
    pre = double_well_preimages(5.0, 0.5)
    assert len(pre) == 1
    assert sgd_step(pre[0], 0.5) == pytest.approx(5.0)


def quadratic(h):
    """L(x) = sum h x**2 / 2: the SGD step is x -> (1 - alpha h) x, the inverse known."""
    return lambda x: h * x


def test_fixed_point_iteration_converges_below_one_over_the_curvature():
    h = np.array([0.5, 1.0, 2.0])
    x0 = np.array([1.0, -2.0, 0.5])
    alpha = 0.4                       # alpha * max h = 0.8 < 1
    x1 = (1 - alpha * h) * x0
    tr = invert_sgd_step(quadratic(h), x1, alpha, 200, x_true=x0)
    assert tr.converged and tr.gradients == 200
    np.testing.assert_allclose(tr.x, x0, rtol=1e-12)
    # the error shrinks by alpha * max h per iteration
    assert tr.errors[50] / tr.errors[40] == pytest.approx(0.8 ** 10, rel=1e-3)


def test_converged_at_is_where_the_closed_form_move_drops_below_the_tolerance():
    h = np.array([0.5, 1.0, 2.0])
    x0 = np.array([1.0, -2.0, 0.5])
    alpha = 0.4
    x1 = (1 - alpha * h) * x0
    tr = invert_sgd_step(quadratic(h), x1, alpha, 200, x_true=x0)
    # error e_k = (alpha h)**k (x1 - x0), so the k-th move is (alpha h)**(k-1) (1 - alpha h) |x1 - x0|
    k = np.arange(1, 201)[:, None]
    moves = np.max((alpha * h) ** (k - 1) * (1 - alpha * h) * np.abs(x1 - x0), axis=1)
    assert tr.converged_at == int(np.argmax(moves <= 1e-12 * 2.0)) + 1
    assert 50 < tr.converged_at < 200 and tr.steps[tr.converged_at - 2] > 2e-12


def test_fixed_point_iteration_diverges_above_one_over_the_curvature_although_x_t_exists():
    h = np.array([0.5, 1.0, 2.0])
    x0 = np.array([1.0, -2.0, 0.5])
    alpha = 0.7                       # alpha * max h = 1.4: SGD itself is stable (below 2)
    x1 = (1 - alpha * h) * x0
    np.testing.assert_allclose(x1 / (1 - alpha * h), x0)    # the inverse exists ...
    tr = invert_sgd_step(quadratic(h), x1, alpha, 60, x_true=x0)
    assert not tr.converged and tr.converged_at is None      # ... the iteration misses it
    assert tr.errors[-1] > 1e6 * tr.errors[0]


def test_fixed_point_iteration_reports_overflow_as_inf():
    tr = invert_sgd_step(lambda x: 10.0 * x, np.ones(2), 1.0, 2000)
    assert np.isinf(tr.steps[-1]) and not tr.converged and tr.gradients < 2000


def test_largest_curvature_of_a_known_hessian():
    A = np.random.default_rng(0).standard_normal((5, 5))
    H = A @ A.T
    got = largest_curvature(lambda x: 0.5 * anp.dot(x, anp.dot(H, x)), np.zeros(5), 300)
    assert got == pytest.approx(np.linalg.eigvalsh(H).max(), rel=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: double_well_preimages(0.0, 0.0), "alpha must be a positive"),
    (lambda: invert_sgd_step(lambda x: x, np.ones(2), 0.1, 0), "n_iters"),
    (lambda: invert_sgd_step(lambda x: x, np.ones(2), -0.1, 5), "alpha must be"),
    (lambda: largest_curvature(lambda x: anp.sum(x ** 2), np.ones(2), 0), "n_iters"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
