"""Checks every explorer makes before building its controls.

An ipywidgets slider silently moves a starting value outside its range to the
nearest end, and a dropdown refuses a value it does not list; so a notebook
that asked for beta = 0.3 on a 0.5..0.99 slider would quietly run at 0.5.
These checks refuse such settings instead, naming the argument that widens
the control.
"""
import numpy as np


def check_in_slider(name, value, lo, hi, widen):
    """``value`` must be finite and inside the slider's range lo..hi; ``widen`` says how to
    make room (e.g. "pass beta_range=(0.3, 0.99) to widen it")."""
    if not (np.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} = {value!r} is outside the slider's range {lo:g}..{hi:g}, and "
                         f"the slider would silently move it to the nearest end; {widen}")


def check_decay_slider(name, value, value_range, allow_one=False):
    """A decay such as beta and the range of its slider: 0 < low < high < 1 (<= 1 with
    ``allow_one``), the value a decay, and inside the range."""
    lo, hi = (float(b) for b in value_range)
    top = "<= 1" if allow_one else "< 1"
    if not (0 < lo < hi and (hi <= 1 if allow_one else hi < 1)):
        raise ValueError(f"{name}_range must be (low, high) with 0 < low < high {top}, got "
                         f"{value_range!r}")
    if not (np.isfinite(value) and 0 < value and (value <= 1 if allow_one else value < 1)):
        raise ValueError(f"{name} must lie in (0, 1{']' if allow_one else ')'} (a decay that "
                         f"training can undo), got {value!r}")
    check_in_slider(name, value, lo, hi, f"pass {name}_range=({min(lo, value):g}, "
                                         f"{max(hi, value):g}) to widen it")


def check_choice(name, value, choices):
    """``value`` must be one of a dropdown's (label, value) ``choices``."""
    values = [v for _, v in choices]
    if value not in values:
        raise ValueError(f"{name} must be one of the dropdown's values {values}, got {value!r}")


def check_count(name, value, minimum=1):
    """A whole number of steps (or parameters) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def check_step_size(alpha):
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive step size, got {alpha!r}")
