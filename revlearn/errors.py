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
