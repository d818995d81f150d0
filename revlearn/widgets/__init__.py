"""Interactive controls for the notebooks, built so tests can drive them.

Each submodule returns ipywidgets controls together with the matplotlib
figure they update, so a test can set ``control.value`` and check that the
plotted data changed, without a browser.
"""
