"""Naive float reversal fails, and fails where theory says it does."""
import autograd.numpy as anp
import numpy as np
import pytest

from revlearn import reverse_naive

rng = np.random.default_rng(0)
A, y = rng.standard_normal((50, 8)), rng.standard_normal(50)
X0 = rng.standard_normal(8)


def loss(x, m, t):
    return anp.mean((anp.tanh(anp.dot(A, x)) - y) ** 2)


def run(precision, beta=0.5, T=120, alpha=0.1):
    return reverse_naive(loss, X0, np.full(T, alpha), np.full(T, beta), precision=precision)


def test_error_grows_until_it_is_the_size_of_the_weights():
    r = run("float32")
    T = len(r.errors) - 1
    assert r.errors[T] == 0.0
    assert r.errors[T - 5] < 1e-5 * r.weight_scale[T - 5]  # fine at first
    assert r.errors[0] > r.weight_scale[0]                   # garbage by the end
    k = r.steps_to_failure()
    assert k is not None and 10 < k < T


def test_higher_float_precision_fails_later():
    k16, k32, k64 = (run(p).steps_to_failure() for p in ("float16", "float32", "float64"))
    assert k16 < k32 < k64


def test_failure_step_moves_one_over_log2_inverse_beta_steps_per_mantissa_bit():
    """mpmath at 20..60 bits: the slope of failure step vs precision is 1/log2(1/beta)."""
    for beta in (0.5, 0.7):
        bits = np.array([20, 30, 40, 50, 60])
        steps = np.array([run(int(p), beta=beta, T=200).steps_to_failure() for p in bits])
        slope = np.polyfit(bits, steps, 1)[0]
        predicted = 1 / np.log2(1 / beta)
        assert slope == pytest.approx(predicted, rel=0.25), (beta, steps)


def test_mpmath_at_53_bits_behaves_like_float64():
    assert abs(run(53).steps_to_failure() - run("float64").steps_to_failure()) <= 3


def test_reversal_with_beta_one_does_not_blow_up():
    r = run("float64", beta=1.0, T=60)
    assert r.steps_to_failure() is None
