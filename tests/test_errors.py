"""Every way exactness could break gets a clear, specific exception."""
import autograd.numpy as anp
import numpy as np
import pytest

from revlearn import (BufferUnderflowError, ExactArray, ReversalError, hypergrad, reverse_naive,
                      train)

from problems import tanh_regression

T = 20
train_loss, meta_loss, x0 = tanh_regression(4, 0)
ALPHAS, BETAS = np.full(T, 0.3), np.full(T, 0.9)


@pytest.mark.parametrize("fn", [hypergrad, lambda tl, ml, *a, **k: train(tl, *a, **k),
                                lambda tl, ml, *a, **k: reverse_naive(tl, *a, **k)])
@pytest.mark.parametrize("beta", [0.0, -0.5, 1.5, np.nan])
def test_beta_outside_0_1_is_rejected(fn, beta):
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 1\]"):
        fn(train_loss, meta_loss, x0, ALPHAS, np.full(T, beta))


def test_beta_of_one_is_allowed():
    assert hypergrad(train_loss, meta_loss, x0, ALPHAS, np.ones(T)).exact


def test_negative_step_size_is_rejected():
    with pytest.raises(ValueError, match="step sizes must be >= 0"):
        hypergrad(train_loss, meta_loss, x0, -ALPHAS, BETAS)


@pytest.mark.parametrize("alphas, betas, kw, match", [
    (np.full(T, 0.3), np.full(T + 1, 0.9), {}, "same shape"),
    (np.full((T, 2), 0.3), np.full((T, 2), 0.9), {}, "without groups"),
    (np.full((T, 2), 0.3), np.full((T, 2), 0.9), {"groups": np.array([0, 1, 0])}, r"shape \(4,\)"),
    (np.full((T, 2), 0.3), np.full((T, 2), 0.9), {"groups": np.array([0, 1, 2, 0])}, "group ids"),
    (np.full(T, 0.3), np.full(T, 0.9), {"groups": np.array([0, 1, 1, 0])}, "T x G"),
    (np.full(T, 0.3), np.full(T, 0.9), {"v0": np.zeros(3)}, "v0 must have shape"),
    (np.zeros(0), np.zeros(0), {}, "empty"),
])
def test_mismatched_shapes_are_explained(alphas, betas, kw, match):
    with pytest.raises(ValueError, match=match):
        hypergrad(train_loss, meta_loss, x0, alphas, betas, **kw)


def test_x0_must_be_flat():
    with pytest.raises(ValueError, match="flat 1-D"):
        hypergrad(train_loss, meta_loss, x0.reshape(2, 2), ALPHAS, BETAS)


def test_nan_gradient_names_the_iteration():
    def bad_loss(x, m, t):
        return anp.sum(x ** 2) * (anp.nan if t == 7 else 1.0)
    with pytest.raises(FloatingPointError, match="iteration 7"):
        hypergrad(bad_loss, meta_loss, x0, ALPHAS, BETAS)
    with pytest.raises(FloatingPointError, match="iteration 7"):
        train(bad_loss, x0, ALPHAS, BETAS)


def test_overflow_during_training_names_the_iteration_and_the_fix():
    explode = lambda x, m, t: -anp.sum(anp.exp(x))  # gradient ascent to infinity
    with pytest.raises((OverflowError, FloatingPointError), match="iteration") as info:
        hypergrad(explode, meta_loss, x0, np.full(T, 5.0), BETAS)
    if isinstance(info.value, OverflowError):
        assert "frac_bits" in str(info.value)


def test_overflow_from_a_too_large_range():
    big = lambda x, m, t: -1e3 * anp.sum(x)  # constant push outwards, grows without bound
    with pytest.raises(OverflowError, match=r"iteration \d+.*fixed-point range"):
        hypergrad(big, meta_loss, x0, np.full(200, 1.0), np.full(200, 0.9))


def test_non_reproducible_gradient_is_detected():
    rng = np.random.default_rng(0)  # advances every call: the reverse pass sees other noise

    def noisy(x, m, t):
        return train_loss(x, m, t) + 1e-3 * anp.dot(rng.standard_normal(len(x)), x)
    with pytest.raises(ReversalError, match="different gradient at iteration"):
        hypergrad(noisy, meta_loss, x0, ALPHAS, BETAS)


def test_loss_autograd_cannot_differentiate_is_explained():
    def not_autograd(x, m, t):
        return float(np.sum(np.asarray(x) ** 2))
    with pytest.raises(TypeError, match="could not differentiate train_loss with autograd"):
        hypergrad(not_autograd, meta_loss, x0, ALPHAS, BETAS)
    with pytest.raises(TypeError, match="could not differentiate meta_loss"):
        hypergrad(train_loss, lambda x, m: float(np.sum(np.asarray(x))), x0, ALPHAS, BETAS)


def test_non_scalar_loss_is_explained():
    with pytest.raises(TypeError, match="autograd"):
        hypergrad(lambda x, m, t: x ** 2, meta_loss, x0, ALPHAS, BETAS)


def test_buffer_underflow_is_an_error_not_garbage():
    # each division by 0.9 borrows 0.15 bits that no multiply stored; the buffer
    # starts with 8 spare bits per parameter, so this runs dry well before 200 steps
    X = ExactArray(np.ones(3))
    with pytest.raises(BufferUnderflowError, match="underflow"):
        for _ in range(200):
            X.div(58982, 1 << 16)


def test_naive_precision_is_validated():
    with pytest.raises(ValueError, match="precision"):
        reverse_naive(train_loss, x0, ALPHAS, BETAS, precision="float128")
