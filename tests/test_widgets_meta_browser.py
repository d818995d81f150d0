"""The meta-iteration browser, driven without a browser."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from revlearn.meta import MetaHistory, meta_optimize  # noqa: E402
from revlearn.widgets.meta_browser import history_browser  # noqa: E402


def small_history():
    def objective(p, i):
        return float(np.sum(p ** 2)), 2 * p, {"valid_loss": float(np.sum(p ** 2)) + 1, "tag": "x"}
    return meta_optimize(objective, np.array([1.0, -2.0, 3.0]), n_iters=4, step_size=0.2,
                         method="sgd", progress=False)


def draw_bars(fig, params, i):
    ax = fig.add_subplot()
    ax.plot(params)
    ax.set_title(f"iteration {i}")


def plotted(browser):
    return browser.fig.axes[0].lines[0].get_ydata().copy()


def test_slider_redraws_the_figure_and_readout():
    h = small_history()
    b = history_browser(h, draw_bars)
    assert b.slider.min == 0 and b.slider.max == 3 and b.slider.value == 3
    assert np.allclose(plotted(b), h.params[3])
    before = b.readout.value
    b.slider.value = 0
    assert np.allclose(plotted(b), h.params[0])
    assert b.fig.axes[0].get_title() == "iteration 0"
    assert len(b.fig.axes) == 1  # cleared, not stacked
    assert b.readout.value != before
    assert "meta-loss 14" in b.readout.value and "valid_loss 15" in b.readout.value
    assert "tag" not in b.readout.value


def test_custom_readout_start_and_update():
    h = small_history()
    b = history_browser(h, draw_bars, start=1, readout=lambda hist, i: f"<b>{i}</b>",
                        description="step")
    assert b.slider.value == 1 and b.readout.value == "<b>1</b>"
    assert b.slider.description == "step"
    b.update(2)
    assert np.allclose(plotted(b), h.params[2]) and b.readout.value == "<b>2</b>"


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        history_browser(MetaHistory(), draw_bars)
    with pytest.raises(ValueError, match="start"):
        history_browser(small_history(), draw_bars, start=7)


def test_display_carries_a_static_picture_and_text_for_readers_without_a_kernel():
    import base64

    h = small_history()
    b = history_browser(h, draw_bars, start=2, readout=lambda hist, i: f"<b>step</b> {i} of 3")
    bundle = b._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle        # the live widget
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert bundle["text/plain"].startswith("step 2 of 3")
    b.slider.value = 0            # the static copy follows the state shown
    assert base64.b64decode(b._repr_mimebundle_()["image/png"]) != png
