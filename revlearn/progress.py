"""Progress bars that stay readable in a saved notebook.

``tqdm.auto`` draws a live widget in Jupyter, but a notebook executed and
saved keeps only the text the widget had when it was first shown: a frozen
"0%| | 0/40" on GitHub or nbviewer.  ``Progress`` shows the same live bar and,
when the loop ends, replaces it in place (an IPython display update) with its
final line, e.g. "meta (adam): 100%|##########| 40/40 [00:21<00:00, meta_loss=0.136]",
or with nothing for a bar that should not stay (``leave=False``).  Outside
a notebook it is plain ``tqdm``.
"""
from tqdm.auto import tqdm


class _Text:
    """A display object whose only representation is a line of text."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _in_notebook():
    try:
        from tqdm.notebook import tqdm_notebook
    except ImportError:      # no ipywidgets: tqdm.auto is the terminal bar
        return False
    return issubclass(tqdm, tqdm_notebook)


class Progress:
    """Iterate over ``iterable`` with a progress bar labelled ``desc``.

    ``set_postfix(**values)`` shows numbers beside the bar (as in tqdm).  In
    a notebook the bar is replaced by its final line when the loop finishes
    (or by nothing with ``leave=False``), so a saved notebook never shows a
    bar stuck at 0%.
    """

    def __init__(self, iterable, desc, total=None, leave=True):
        self.leave = leave
        self._handle = None
        if _in_notebook():
            from IPython.display import display
            self.bar = tqdm(iterable, desc=desc, total=total, display=False)
            self._handle = display(self.bar.container, display_id=True)
        else:
            self.bar = tqdm(iterable, desc=desc, total=total, leave=leave)

    def __iter__(self):
        try:
            yield from self.bar
        finally:
            self.close()

    def set_postfix(self, **values):
        self.bar.set_postfix(**values)

    def close(self):
        """End the bar (done automatically when the loop ends or fails)."""
        if self._handle is None:
            self.bar.close()
            return
        text = self.bar.format_meter(**self.bar.format_dict) if self.leave else ""
        self.bar.close()
        self._handle.update(_Text(text))
        self._handle = None
