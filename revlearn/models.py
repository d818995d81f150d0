"""Small classifiers for the notebooks: logistic regression and tanh MLPs.

Parameters live in one flat vector (``autograd.misc.flatten`` of a list of
(W, b) pairs), because that is what momentum SGD and the hypergradient act on.
Each layer's weights and biases form a group (ids 0, 1 for layer 1; 2, 3 for
layer 2, ...), so schedules and initialization scales can be set per group.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.misc import flatten
from autograd.tracer import getval


def _splitter(shapes):
    """A differentiable x -> (array of shape s for s in shapes), one primitive.

    autograd.misc.flatten's unflatten differentiates each slice separately by
    scattering into a full-size zero vector; for a flat parameter vector that
    is several full-size passes per backward pass.  Here the backward pass is
    one concatenate (and its own backward pass is this split again, so
    second derivatives -- Hessian-vector products -- stay cheap too).
    """
    sizes = [int(onp.prod(s)) for s in shapes]
    ends = onp.cumsum(sizes)

    @primitive
    def split(x):
        return tuple(x[e - n:e].reshape(s) for n, e, s in zip(sizes, ends, shapes))

    @primitive
    def join(parts):
        return onp.concatenate([onp.ravel(p) for p in parts])

    defvjp(split, lambda ans, x: lambda g: join(g))
    defvjp(join, lambda ans, parts: lambda g: split(g))
    return split


class MLP:
    """A tanh multi-layer perceptron with a log-softmax output.

    ``MLP([64, 50, 10])`` has one hidden layer of 50 units; ``MLP([64, 10])``
    is multinomial logistic regression.  ``loss(x, inputs, targets)`` is the
    mean negative log-likelihood for one-hot ``targets``.
    """

    def __init__(self, layer_sizes):
        sizes = [int(s) for s in layer_sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer_sizes needs at least an input and an output size, got {layer_sizes}")
        self.layer_sizes = sizes
        template = [(onp.zeros((m, n)), onp.zeros(n)) for m, n in zip(sizes[:-1], sizes[1:])]
        flat, self.unflatten = flatten(template)
        self.n_params = len(flat)
        ids = [(onp.full((m, n), 2 * i), onp.full(n, 2 * i + 1))
               for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.groups = flatten(ids)[0].astype(onp.intp)
        self.n_groups = 2 * (len(sizes) - 1)
        self.group_names = [f"{kind}{i + 1}" for i in range(len(sizes) - 1) for kind in ("W", "b")]
        self.fan_in = onp.array([sizes[i // 2] for i in range(self.n_groups)], dtype=float)
        self._split = _splitter([a.shape for pair in template for a in pair])

    def predict(self, x, inputs):
        """Log class probabilities, shape (n_examples, n_classes)."""
        h = inputs
        parts = self._split(x)
        n_layers = len(parts) // 2
        for i in range(n_layers):
            h = np.dot(h, parts[2 * i]) + parts[2 * i + 1]
            if i < n_layers - 1:
                h = np.tanh(h)
        # log-softmax, shifted by the (constant) row max for stability; autograd.scipy
        # would pull in scipy for this one line.
        h = h - onp.max(getval(h), axis=1, keepdims=True)
        return h - np.log(np.sum(np.exp(h), axis=1, keepdims=True))

    def loss(self, x, inputs, targets):
        """Mean negative log-likelihood of one-hot ``targets``."""
        return -np.sum(self.predict(x, inputs) * targets) / inputs.shape[0]

    def accuracy(self, x, inputs, labels):
        """Fraction of examples whose most probable class is the label."""
        return float(onp.mean(onp.argmax(self.predict(x, inputs), axis=1) == labels))

    def noise(self, seed=0):
        """Fixed standard-normal noise, one value per parameter (same seed, same noise)."""
        return onp.random.default_rng(seed).standard_normal(self.n_params)

    def init(self, scales, seed=0):
        """Initial weights x0 = scale[group] * noise: ``scales`` is a scalar or one per group."""
        scales = onp.broadcast_to(onp.asarray(scales, dtype=float), (self.n_groups,))
        return scales[self.groups] * self.noise(seed)

    def layer_weights(self, x, layer):
        """The weight matrix of ``layer`` (0-based) as an array, for pictures."""
        return self.unflatten(x)[layer][0]


def logistic_regression(n_inputs, n_classes):
    """Multinomial logistic regression: an MLP with no hidden layer."""
    return MLP([n_inputs, n_classes])
