"""The Adam reversal explorer of notebook 11, driven by setting control values."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import revlearn as rl  # noqa: E402
from revlearn.adam_reversal import exact_walk, loss_rate, predicted_failure_step  # noqa: E402
from revlearn.widgets.adam import adam_reversal_explorer  # noqa: E402

from problems import tanh_regression  # noqa: E402

T = 200


@pytest.fixture
def problem():
    train_loss, _, x0 = tanh_regression(10, 3)
    return train_loss, x0


@pytest.fixture
def explorer(problem):
    return adam_reversal_explorer(*problem, T=T, beta1=0.8, beta2=0.999, precision="float32")


def adam(b1, b2):
    return rl.Adam(np.full(T, 0.01), np.full(T, b1), np.full(T, b2))


def test_it_draws_the_reversals_it_ran(explorer, problem):
    r = explorer.naive
    err = explorer.measured.get_ydata()
    shown = np.isfinite(err)
    np.testing.assert_array_equal(err[shown], r.errors[::-1][shown])
    ref = rl.reverse_naive(*problem, optimizer=adam(0.8, 0.999), precision="float32")
    assert r.steps_to_failure() == ref.steps_to_failure() is not None
    assert explorer.walk.exact and "bit for bit: <b>True</b>" in explorer.readout.value
    np.testing.assert_array_equal(explorer.bits_m.get_ydata(), explorer.walk.bits["m"])


def test_predicted_line_climbs_at_the_faster_averages_rate(explorer):
    k = np.arange(T + 1)
    scale = explorer.naive.weight_scale[::-1]
    np.testing.assert_allclose(np.log2(explorer.predicted.get_ydata() / scale),
                               -24 + k * math.log2(1 / 0.8))
    explorer.beta2.value = 0.6            # now the second moment forgets faster
    np.testing.assert_allclose(np.log2(explorer.predicted.get_ydata() / scale_of(explorer)),
                               -24 + k * math.log2(1 / 0.6))
    assert "set by β2" in explorer.readout.value and "β2 &lt; β1" in explorer.readout.value


def scale_of(explorer):
    return explorer.naive.weight_scale[::-1]


def test_moving_a_slider_reruns_both_reversals(explorer, problem):
    before = explorer.readout.value
    bits_before = explorer.bits_m.get_ydata().copy()
    explorer.beta1.value = 0.5
    assert explorer.readout.value != before
    assert f"about {predicted_failure_step(0.5, 0.999, 24):.0f} steps" in explorer.readout.value
    assert f"{loss_rate(0.5, 0.999):.3f} bits" in explorer.readout.value
    assert not np.array_equal(bits_before, explorer.bits_m.get_ydata())
    ref = exact_walk(*problem, adam(0.5, 0.999))
    assert explorer.walk.bits_per_step() == pytest.approx(ref.bits_per_step(), rel=1e-12)
    assert f"{ref.bits_per_step():.4f}</b> bits" in explorer.readout.value


def test_beta2_below_beta1_is_flagged(explorer):
    explorer.beta2.value = 0.7
    assert "β2 &lt; β1" in explorer.readout.value and "best case" in explorer.readout.value


def test_more_precision_fails_later(explorer):
    fail32 = explorer.naive.steps_to_failure()
    explorer.precision.value = "float64"
    assert "p = 53" in explorer.readout.value
    fail64 = explorer.naive.steps_to_failure()
    assert fail64 is None or fail64 > fail32


def test_the_exact_reversal_is_drawn_at_the_floor(explorer):
    assert (explorer.exact_error.get_ydata() < 1e-19).all()


def test_display_leaves_a_picture_and_text(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    assert "naive" in bundle["text/plain"] and "<b>" not in bundle["text/plain"]


@pytest.mark.parametrize("kw, match", [
    (dict(beta1=0.995), "beta1_range"),
    (dict(beta2=0.99999), "beta2_range"),
    (dict(beta1=1.0), "beta1 must lie in"),
    (dict(precision="float16"), "dropdown"),
    (dict(precisions=[("half", "float16")], precision="float16"), "float16 cannot hold"),
    (dict(T=1), "T must be"),
    (dict(alpha=0.0), "alpha must be"),
    (dict(beta1_range=(0.9, 0.5)), "beta1_range must be"),
])
def test_settings_the_controls_cannot_show_are_refused(problem, kw, match):
    with pytest.raises(ValueError, match=match):
        adam_reversal_explorer(*problem, **{"T": 20, **kw})
