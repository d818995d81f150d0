"""The buffer-growth and chaos widgets: moving a control re-runs the experiment and redraws."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from revlearn import chaos  # noqa: E402
from revlearn.widgets.buffer_growth import buffer_growth_explorer  # noqa: E402
from revlearn.widgets.chaos import chaos_explorer, window  # noqa: E402


def test_buffer_growth_widget_follows_beta_and_denominator_bits():
    ex = buffer_growth_explorer(beta=0.9, T=100, n_params=20)
    measured, theory, _ = ex.ax.get_lines()
    y0, text0 = measured.get_ydata().copy(), ex.readout.value
    assert "58982/65536" in text0 and ("210x" in text0 or "211x" in text0)  # 32 / 0.1520
    assert y0[-1] == pytest.approx(100 * math.log2(65536 / 58982), rel=0.01)

    ex.beta.value = 0.98
    y1 = measured.get_ydata()
    assert not np.allclose(y1, y0) and ex.readout.value != text0
    assert y1[-1] == pytest.approx(100 * math.log2(1 / 0.98), rel=0.03)
    np.testing.assert_allclose(theory.get_ydata()[-1], 100 * ex.trace.theory)

    ex.denominator_bits.value = 3          # 0.98 * 8 = 7.84 rounds to 8/8 = 1: nothing stored
    assert (ex.trace.n, ex.trace.d) == (8, 8)
    assert np.all(measured.get_ydata() == 0)
    assert "nothing is stored" in ex.readout.value


@pytest.fixture(scope="module")
def tiny_problem():
    return chaos.make_problem(layer_sizes=(64, 5, 10), n_train=60, batch_size=30)


def test_chaos_widget_follows_T_and_the_zoom_window(tiny_problem):
    ex = chaos_explorer(tiny_problem, T=3, center=2.0, log10_width=0.0, n_points=6, T_max=10)
    loss_line = ex.axes[0].get_lines()[0]
    grad_line = ex.axes[1].get_lines()[0]
    y0, g0, text0 = loss_line.get_ydata().copy(), grad_line.get_ydata().copy(), ex.readout.value
    assert "T = 3" in text0 and ex.sweep.exact

    ex.T.value = 6
    assert ex.sweep.T == 6 and "T = 6" in ex.readout.value
    assert not np.allclose(loss_line.get_ydata(), y0)
    assert not np.allclose(grad_line.get_ydata(), g0)
    np.testing.assert_array_equal(grad_line.get_ydata(), ex.sweep.hypergrad)

    ex.log10_width.value = -2.0
    x = loss_line.get_xdata()
    np.testing.assert_allclose(x, window(2.0, -2.0, 6))
    assert x[-1] - x[0] == pytest.approx(0.01)
    assert len(ex.axes[0].collections[0].get_segments()) == 6   # one tangent per point

    ex.center.value = 2.5
    assert loss_line.get_xdata()[0] == pytest.approx(2.495)


def test_chaos_widget_tangents_have_the_exact_slope(tiny_problem):
    ex = chaos_explorer(tiny_problem, T=2, center=1.5, log10_width=-1.0, n_points=4, T_max=5)
    for seg, g in zip(ex.axes[0].collections[0].get_segments(), ex.sweep.hypergrad):
        (x0, y0), (x1, y1) = seg
        assert (y1 - y0) / (x1 - x0) == pytest.approx(g, rel=1e-6, abs=1e-9)


# -- settings the sliders cannot show are refused, not clamped (issue 10, item 9) -----------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=0.3), r"outside the slider's range 0\.5\.\.0\.999.*beta_range=\(0\.3, 0\.999\)"),
    (dict(denominator_bits=0), "denominator_bits must be an integer in 1..20"),
    (dict(denominator_bits=21), "denominator_bits"), (dict(beta=1.5), r"\(0, 1\]"),
    (dict(T=0), "T must"), (dict(n_params=2.5), "n_params")])
def test_buffer_growth_widget_refuses_what_it_would_clamp(kwargs, match):
    with pytest.raises(ValueError, match=match):
        buffer_growth_explorer(**{"T": 10, "n_params": 5, **kwargs})


def test_buffer_growth_widget_runs_at_a_widened_beta():
    ex = buffer_growth_explorer(beta=0.3, T=20, n_params=5, beta_range=(0.3, 0.999))
    assert ex.beta.value == 0.3
    assert ex.trace.n == round(0.3 * 65536) and "beta = 0.3000" in ex.readout.value


@pytest.mark.parametrize("kwargs, match", [
    (dict(T=80), "T_max=80"), (dict(T=0), "outside"), (dict(center=3.5), r"center_range=\(1\.5, 3\.5\)"),
    (dict(log10_width=1.0), "log10_width"), (dict(n_points=1), "n_points"),
    (dict(T=2.5), "whole number")])
def test_chaos_widget_refuses_what_it_would_clamp(tiny_problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chaos_explorer(tiny_problem, **{"T": 2, "n_points": 3, **kwargs})
