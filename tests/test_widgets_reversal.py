"""Widgets of notebooks 1 and 2, driven the way a reader would: by setting control values."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import revlearn as rl  # noqa: E402
from revlearn.errors import ReversalError  # noqa: E402
from revlearn.fixedpoint import ExactArray  # noqa: E402
from revlearn.rational import rational_value  # noqa: E402
from revlearn.toy import toy_problem  # noqa: E402
from revlearn.widgets.reversal import (  # noqa: E402
    naive_reversal_explorer, predicted_failure_step, trajectory_stepper)


@pytest.fixture
def explorer():
    p = toy_problem()
    return naive_reversal_explorer(p.train_loss, p.x0, alpha=0.5, T=150, beta=0.9,
                                   precision="float16")


def test_predicted_failure_step():
    assert predicted_failure_step(0.9, 53) == pytest.approx(53 / math.log2(1 / 0.9))
    assert predicted_failure_step(0.5, 24) == pytest.approx(24.0)


def test_explorer_draws_the_naive_reversal_it_ran(explorer):
    r = explorer.result
    err = explorer.measured.get_ydata()
    # The plot shows errors k reverse steps back from the end (exact zeros left off the log axis).
    shown = np.isfinite(err)
    np.testing.assert_array_equal(err[shown], r.errors[::-1][shown])
    assert r.steps_to_failure() is not None and explorer.failure_line.get_xdata()[0] == \
        r.steps_to_failure()
    assert "float16" in explorer.readout.value and "β = 0.90" in explorer.readout.value


def test_predicted_line_has_slope_log2_one_over_beta(explorer):
    explorer.beta.value = 0.8
    k = np.arange(explorer.T + 1)
    scale = explorer.result.weight_scale[::-1]
    bits = np.log2(explorer.predicted.get_ydata() / scale)
    np.testing.assert_allclose(bits, -11 + k * math.log2(1 / 0.8))


def test_moving_beta_reruns_and_redraws(explorer):
    before, text = explorer.measured.get_ydata().copy(), explorer.readout.value
    explorer.beta.value = 0.6
    after = explorer.measured.get_ydata()
    assert not np.array_equal(before, after, equal_nan=True)
    assert explorer.readout.value != text and "β = 0.60" in explorer.readout.value
    # an independent run with the same settings gives the same curve
    p = toy_problem()
    ref = rl.reverse_naive(p.train_loss, p.x0, np.full(150, 0.5), np.full(150, 0.6),
                           precision="float16")
    assert explorer.result.steps_to_failure() == ref.steps_to_failure()


def test_more_precision_fails_later(explorer):
    fail16 = explorer.result.steps_to_failure()
    explorer.precision.value = "float64"
    assert "float64" in explorer.readout.value and "p = 53" in explorer.readout.value
    fail64 = explorer.result.steps_to_failure()
    assert fail64 is None or fail64 > fail16
    assert np.nanmax(explorer.measured.get_ydata()) < 1e-6


@pytest.fixture
def stepper():
    return trajectory_stepper()


def test_stepper_starts_at_step_zero(stepper):
    assert stepper.t == 0 and stepper.slider.value == 0 and stepper.slider.max == 50
    assert stepper.slider.description == "step"
    assert stepper.readout.value.startswith("step 0 of 50: x = (-3.00000, 1.50000)")
    assert stepper.V.buffer.is_empty()


def test_slider_forward_runs_momentum_sgd(stepper):
    p = toy_problem()
    xs = []
    rl.train(p.train_loss, p.x0, p.alphas, rational_value(p.betas),
             callback=lambda t, x, v: xs.append(x))
    stepper.slider.value = 30
    assert stepper.t == 30
    np.testing.assert_allclose(stepper.X.val, xs[29], atol=1e-9)   # float training: the oracle
    np.testing.assert_array_equal(stepper.point.get_xdata(), [stepper.X.val[0]])
    assert len(stepper.path.get_xdata()) == 31
    assert stepper.readout.value.startswith("step 30 of 50: ")
    assert stepper.V.buffer.nbits > 5


def test_slider_backward_recovers_states_bit_for_bit(stepper):
    stepper.slider.value = 50
    bits_end = stepper.V.buffer.nbits
    # log2(1/beta) bits per parameter per step, within a small coding overhead
    n = rl.to_rational(0.9)[0]
    assert bits_end == pytest.approx(2 * 50 * math.log2(65536 / n), abs=0.5)
    stepper.slider.value = 12
    fresh = trajectory_stepper()
    fresh._go_to(12)
    np.testing.assert_array_equal(stepper.X.k, fresh.X.k)
    np.testing.assert_array_equal(stepper.V.k, fresh.V.k)
    assert "same bits as the forward pass: True" in stepper.readout.value
    stepper.slider.value = 0
    np.testing.assert_array_equal(stepper.X.k, ExactArray(toy_problem().x0).k)
    np.testing.assert_array_equal(stepper.V.k, 0)
    assert stepper.V.buffer.is_empty()
    assert "bits stored = 0.0" in stepper.readout.value


def test_slider_redraws_readout_and_plot(stepper):
    text, title = stepper.readout.value, stepper.ax_path.get_title()
    stepper.slider.value = 7
    assert stepper.readout.value != text and stepper.ax_path.get_title() != title
    assert stepper.bits_point.get_xdata()[0] == 7


def test_a_corrupted_state_is_caught(stepper):
    stepper.slider.value = 20
    stepper.V.k = stepper.V.k + 1     # flip the lowest bit of the velocity
    with pytest.raises(ReversalError):
        stepper.slider.value = 19


def test_stepper_refuses_bad_input():
    p = toy_problem()
    p3 = rl.toy.ToyProblem(x0=np.zeros(3), alphas=p.alphas, betas=p.betas)
    with pytest.raises(ValueError, match="2-D"):
        trajectory_stepper(p3)
    with pytest.raises(ValueError, match="start"):
        trajectory_stepper(start=51)


# -- settings the controls cannot show are refused, not clamped (issue 10, item 9) ----------------
@pytest.mark.parametrize("beta", [0.3, 0.995])
def test_explorer_refuses_a_beta_the_slider_would_clamp(beta):
    p = toy_problem()
    with pytest.raises(ValueError, match=r"outside the slider's range 0\.5\.\.0\.99.*beta_range"):
        naive_reversal_explorer(p.train_loss, p.x0, T=20, beta=beta)


def test_explorer_runs_at_a_widened_beta_and_says_so():
    p = toy_problem()
    ex = naive_reversal_explorer(p.train_loss, p.x0, T=40, beta=0.3, beta_range=(0.3, 0.99),
                                 precision="float16")
    assert ex.beta.value == 0.3 and ex.beta.min == 0.3
    assert "β = 0.30" in ex.readout.value
    ref = rl.reverse_naive(p.train_loss, p.x0, np.full(40, 0.5), np.full(40, 0.3),
                           precision="float16")
    np.testing.assert_array_equal(ex.result.errors, ref.errors)   # it ran at 0.3, not 0.5


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=0.0), r"\(0, 1\)"), (dict(beta=1.0), r"\(0, 1\)"), (dict(beta=float("nan")), "beta"),
    (dict(beta_range=(0.5, 1.2)), "beta_range"), (dict(precision="float8"), "precision"),
    (dict(T=0), "T must"), (dict(alpha=-1.0), "alpha")])
def test_explorer_refuses_bad_settings(kwargs, match):
    p = toy_problem()
    with pytest.raises(ValueError, match=match):
        naive_reversal_explorer(p.train_loss, p.x0, **{"T": 20, **kwargs})
