"""Widgets that still show something in a notebook nobody is running.

A notebook stored with its outputs is often first read on GitHub or nbviewer,
where no kernel runs and an ipywidgets control is just a line of text such as
"VBox(children=...)".  ``Snapshot`` displays a widget together with a picture
of its figure and a line of text, as alternative representations of ONE
output: JupyterLab and the classic notebook draw the live widget (its renderer
outranks images), a static viewer draws the picture.

    display(Snapshot(box, fig, "step 0 of 50: x = (-3, 1.5)"))

Every widget object in ``revlearn.widgets`` displays itself this way.
"""
import base64
import io
import re


def figure_png(fig):
    """The figure as PNG bytes, cropped like the inline backend crops it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def plain_text(html):
    """A readout's HTML as one plain line (tags dropped, <br> turned into ' | ')."""
    text = re.sub(r"<br\s*/?>", " | ", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip()


class Snapshot:
    """Display ``widget`` live, with ``fig`` and ``text`` as its static stand-ins.

    The PNG and the text are taken when the object is displayed, so they show
    the state the widget starts in.  ``text`` may be HTML (e.g. a readout's
    value); it is stored as plain text.
    """

    def __init__(self, widget, fig, text=""):
        self.widget, self.fig, self.text = widget, fig, text

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = dict(self.widget._repr_mimebundle_())
        data["image/png"] = base64.b64encode(figure_png(self.fig)).decode("ascii")
        note = "(interactive widget: run the notebook to use the controls)"
        data["text/plain"] = f"{plain_text(self.text)} {note}".strip()
        return data
