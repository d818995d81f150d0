"""The 2-D toy valley: its loss, its set-up, and that the exact engine handles it."""
import autograd
import numpy as np
import pytest

import revlearn as rl
from revlearn.toy import (MINIMUM, X0, ToyProblem, loss_surface, toy_problem, valley_loss,
                          valley_meta_loss)


def central_difference(f, x, eps=1e-6):
    return np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(len(x))])


def test_minimum_is_where_the_docstring_says():
    assert valley_loss(MINIMUM) == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(autograd.grad(valley_loss)(MINIMUM), 0.0, atol=1e-12)
    U, W, Z = loss_surface(n=60)
    assert Z.min() >= 0.0


@pytest.mark.parametrize("x", [(-3.0, 1.5), (0.3, -0.7), (2.0, 2.0)])
def test_gradient_matches_finite_differences(x):
    x = np.array(x)
    np.testing.assert_allclose(autograd.grad(valley_loss)(x),
                               central_difference(valley_loss, x), rtol=1e-6, atol=1e-8)


def test_loss_is_not_convex():
    eig = np.linalg.eigvalsh(autograd.hessian(valley_loss)(np.array([np.pi / 2, 0.0])))
    assert eig.min() < -1.0


def test_surface_agrees_with_pointwise_loss():
    U, W, Z = loss_surface(bounds=((-1, 1), (0, 2)), n=7)
    assert U.shape == W.shape == Z.shape == (7, 7)
    assert Z[3, 5] == valley_loss(np.array([U[3, 5], W[3, 5]]))


def test_default_problem_is_the_notebooks_toy_setting():
    p = toy_problem()
    assert isinstance(p, ToyProblem) and p.T == 50
    np.testing.assert_array_equal(p.x0, X0)
    assert p.alphas.shape == p.betas.shape == (50,)
    assert p.meta_loss is valley_meta_loss


def test_training_goes_down_the_valley():
    p = toy_problem()
    r = rl.train(p.train_loss, p.x0, p.alphas, p.betas)
    assert valley_loss(r.x_final) < 0.01 * valley_loss(p.x0)


@pytest.mark.parametrize("kwargs", [dict(T=0), dict(T=2.5), dict(T=True), dict(alpha=-0.1),
                                    dict(alpha=float("nan")), dict(beta=0.0), dict(beta=1.5),
                                    dict(x0=(1.0, 2.0, 3.0)), dict(x0=(np.nan, 0.0))])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        toy_problem(**kwargs)


def test_exact_hypergradient_on_the_toy_matches_the_unrolled_loop():
    p = toy_problem(T=20)
    ex = rl.hypergrad(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas)
    un = rl.hypergrad_unrolled(p.train_loss, p.meta_loss, p.x0, p.alphas, p.betas)
    assert ex.exact
    np.testing.assert_allclose(ex.d_alphas, un.d_alphas, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ex.d_betas, un.d_betas, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ex.d_x0, un.d_x0, rtol=1e-7, atol=1e-10)
