"""Browse a meta-optimization run: a slider over meta-iterations redraws your picture.

``history_browser(history, draw)`` works for any ``MetaHistory``: you supply
``draw(fig, params, i)``, which draws the hyperparameters ``params`` of
meta-iteration ``i`` onto the (cleared) matplotlib figure ``fig``, e.g. the
learned schedules or the learned L2 penalties as images.  A text readout shows
the meta-loss and the numbers your objective recorded.

Like every revlearn widget it displays itself as a ``Snapshot``: the live
widget, plus a picture of the meta-iteration it shows and its readout as text,
which GitHub and nbviewer show instead of an empty box.
"""
from dataclasses import dataclass

import ipywidgets as W
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from .snapshot import Snapshot, figure_png


def default_readout(history, i):
    """'meta-iteration i: meta-loss ..., key value, ...' for the numbers in ``info[i]``."""
    parts = [f"meta-loss {history.meta_loss[i]:.4g}"]
    for key, value in history.info[i].items():
        try:
            parts.append(f"{key} {float(value):.4g}")
        except (TypeError, ValueError):
            pass  # only scalars belong in a one-line readout
    return f"meta-iteration {i} of {len(history) - 1}: " + ", ".join(parts)


@dataclass
class HistoryBrowser:
    """The controls of ``history_browser``: display it, or drive ``slider.value`` in tests."""
    slider: W.IntSlider
    fig: Figure
    readout: W.HTML
    output: W.Output
    widget: W.VBox
    update: object

    def static_png(self):
        """The figure as it is drawn now, as PNG bytes."""
        return figure_png(self.fig)

    def _repr_mimebundle_(self, include=None, exclude=None):
        # the live widget, and for readers without a kernel the figure and readout shown now
        return Snapshot(self.widget, self.fig, self.readout.value)._repr_mimebundle_()


def history_browser(history, draw, *, description="meta-iteration", readout=None,
                    figsize=(8, 3), start=None):
    """A slider over the meta-iterations of ``history`` that redraws ``draw(fig, params, i)``.

    ``readout(history, i)`` returns the text shown above the figure (default:
    meta-loss and the scalar ``info`` entries).  ``start`` is the first
    meta-iteration shown (default: the last).  Returns a ``HistoryBrowser``
    with ``.slider``, ``.fig``, ``.readout``, ``.update(i)`` and ``.widget``.
    """
    if len(history) == 0:
        raise ValueError("the history is empty: run meta_optimize for at least one meta-iteration")
    last = len(history) - 1
    start = last if start is None else int(start)
    if not 0 <= start <= last:
        raise ValueError(f"start must be a meta-iteration in 0..{last}, got {start}")
    readout = default_readout if readout is None else readout
    fig = Figure(figsize=figsize)  # not a pyplot figure: only the Output widget shows it
    slider = W.IntSlider(value=start, min=0, max=last, description=description,
                         continuous_update=False, style={"description_width": "initial"},
                         layout=W.Layout(width="60%"))
    text = W.HTML()
    output = W.Output()

    def update(i):
        i = int(i)
        fig.clear()
        draw(fig, history.params[i], i)
        text.value = readout(history, i)
        with output:
            clear_output(wait=True)
            display(fig)

    slider.observe(lambda change: update(change["new"]), names="value")
    update(start)
    return HistoryBrowser(slider=slider, fig=fig, readout=text, output=output,
                          widget=W.VBox([slider, text, output]), update=update)
