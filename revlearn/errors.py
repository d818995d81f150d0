"""The exceptions revlearn raises when it cannot guarantee an exact answer.

Exactness is the product: whenever a run could make the reverse pass differ from
the forward pass by even one bit, revlearn stops with one of these (or with a
built-in ``OverflowError``/``FloatingPointError``/``ValueError``) and says what
to change, instead of returning a quietly wrong hypergradient.
"""


class BufferUnderflowError(RuntimeError):
    """More information was popped from a buffer than had been pushed onto it."""


class ReversalError(RuntimeError):
    """The reverse pass did not retrace the forward pass bit for bit."""


class CoarseGridWarning(UserWarning):
    """The fixed-point grid is too coarse for the training steps.

    The reversal is still bit-exact, but a noticeable share of every step was
    rounded away, so the exact run (and its hypergradient) follows dynamics that
    differ from float training.  More fractional bits (``frac_bits``) fix it.
    """
