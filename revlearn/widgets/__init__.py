"""Interactive controls for the notebooks, built so tests can drive them.

Each submodule returns ipywidgets controls together with the matplotlib
figure they update, so a test can set ``control.value`` and check that the
plotted data changed, without a browser.  Displayed in a notebook, each
control also stores a picture of its starting figure and its readout as text
(``snapshot.Snapshot``), so that a saved notebook reads well on GitHub or
nbviewer, where no kernel runs.
"""
