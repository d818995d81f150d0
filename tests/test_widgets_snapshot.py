"""Every widget also leaves a picture and a line of text for readers without a kernel."""
import base64

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from IPython.core.formatters import DisplayFormatter  # noqa: E402

from revlearn import chaos  # noqa: E402
from revlearn.toy import toy_problem  # noqa: E402
from revlearn.widgets.buffer_growth import buffer_growth_explorer  # noqa: E402
from revlearn.widgets.chaos import chaos_explorer  # noqa: E402
from revlearn.widgets.reversal import naive_reversal_explorer, trajectory_stepper  # noqa: E402
from revlearn.widgets.snapshot import Snapshot, plain_text  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _widgets():
    p = toy_problem()
    tiny = chaos.make_problem(layer_sizes=(64, 5, 10), n_train=60, batch_size=30)
    return {
        "naive": naive_reversal_explorer(p.train_loss, p.x0, T=30, precision="float16"),
        "stepper": trajectory_stepper(),
        "growth": buffer_growth_explorer(T=10, n_params=5),
        "chaos": chaos_explorer(tiny, T=2, n_points=3, T_max=5),
    }


@pytest.mark.parametrize("name", ["naive", "stepper", "growth", "chaos"])
def test_displaying_a_widget_stores_the_live_view_a_png_and_its_readout(name):
    ex = _widgets()[name]
    data, _ = DisplayFormatter().format(ex)
    assert WIDGET_VIEW in data                       # what JupyterLab draws
    png = base64.b64decode(data["image/png"])        # what GitHub / nbviewer draw
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert plain_text(ex.readout.value) in data["text/plain"]
    assert "<" not in data["text/plain"]


def test_the_picture_is_the_state_at_display_time():
    st = trajectory_stepper()
    first = DisplayFormatter().format(st)[0]["image/png"]
    st.slider.value = 25
    moved = DisplayFormatter().format(st)[0]["image/png"]
    assert moved != first
    assert "step 25 of 50" in DisplayFormatter().format(st)[0]["text/plain"]


def test_plain_text_drops_tags_and_keeps_line_breaks_readable():
    assert plain_text("<b>T = 3</b>, x<br>next  line") == "T = 3, x | next line"


def test_snapshot_of_any_widget_and_figure():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    slider = widgets.IntSlider(value=3)
    data, _ = DisplayFormatter().format(Snapshot(slider, fig, "<i>three</i>"))
    plt.close(fig)
    assert data[WIDGET_VIEW]["model_id"] == slider.model_id
    assert data["text/plain"].startswith("three (interactive widget")
