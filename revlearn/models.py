"""Small classifiers for the notebooks: logistic regression and tanh MLPs.

Parameters live in one flat vector (``autograd.misc.flatten`` of a list of
(W, b) pairs), because that is what momentum SGD and the hypergradient act on.
Each layer's weights and biases form a group (ids 0, 1 for layer 1; 2, 3 for
layer 2, ...), so schedules and initialization scales can be set per group.
"""
import threading

import autograd.numpy as np
import numpy as onp
from autograd import grad, make_vjp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .autodiff import locked_flatten


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


# ---- Layers as autograd primitives --------------------------------------------------
# Written with autograd's generic np.dot, np.tanh and a log-softmax, a layer becomes a
# dozen small primitives, and the reverse pass (reverse over reverse, for
# Hessian-vector products) pays autograd's per-primitive overhead twice over.  Each
# function below is one primitive whose derivative is again one primitive; the
# derivatives after that are written in autograd.numpy, so every order still works.
# tests/test_models.py checks them against the plain autograd versions.

@primitive
def dense(h, W, b):
    """An affine layer: h @ W + b for a batch h of shape (examples, inputs)."""
    return onp.dot(h, W) + b


# Matrix products and row sums closed under differentiation: each one's VJP is another
# (autograd's np.dot VJP goes through np.tensordot, several times slower at these sizes).
@primitive
def _mm(a, b):
    return onp.dot(a, b)


@primitive
def _mm_t(a, b):
    """a @ b.T"""
    return onp.dot(a, b.T)


@primitive
def _t_mm(a, b):
    """a.T @ b"""
    return onp.dot(a.T, b)


@primitive
def _sum_rows(g):
    return onp.sum(g, axis=0)


@primitive
def _repeat_rows(u, n):
    return onp.repeat(u[None], n, axis=0)


defvjp(dense, lambda ans, h, W, b: lambda g: _mm_t(g, W),
       lambda ans, h, W, b: lambda g: _t_mm(h, g),
       lambda ans, h, W, b: lambda g: _sum_rows(g))
defvjp(_mm, lambda ans, a, b: lambda u: _mm_t(u, b), lambda ans, a, b: lambda u: _t_mm(a, u))
defvjp(_mm_t, lambda ans, a, b: lambda u: _mm(u, b), lambda ans, a, b: lambda u: _t_mm(u, a))
defvjp(_t_mm, lambda ans, a, b: lambda u: _mm_t(b, u), lambda ans, a, b: lambda u: _mm(a, u))
defvjp(_sum_rows, lambda ans, g: lambda u: _repeat_rows(u, g.shape[0]))
defvjp(_repeat_rows, lambda ans, u, n: lambda w: _sum_rows(w))


@primitive
def tanh(h):
    """tanh, differentiated through its output y: dy/dh = 1 - y**2 (no cosh needed)."""
    return onp.tanh(h)


@primitive
def _tanh_backward(g, y):
    return g * (1 - y * y)


defvjp(tanh, lambda y, h: lambda g: _tanh_backward(g, y))
defvjp(_tanh_backward, lambda ans, g, y: lambda u: _tanh_backward(u, y),
       lambda ans, g, y: lambda u: -2 * u * g * y)


def log_softmax(z):
    """Log class probabilities from logits z, row by row (any autograd order)."""
    z = z - onp.max(getval(z), axis=1, keepdims=True)   # a constant shift, for stability
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


@primitive
def nll(z, targets):
    """Mean negative log-likelihood of one-hot ``targets`` under softmax(z)."""
    return -onp.sum(log_softmax(z) * targets) / z.shape[0]


@primitive
def _nll_backward(z, targets, g):
    """g * d nll / dz = g (softmax(z) - targets) / examples."""
    return (onp.exp(log_softmax(z)) - targets) * (g / z.shape[0])


def _softmax_jvp(z, u):
    p = np.exp(log_softmax(z))
    return p * u - p * np.sum(p * u, axis=1, keepdims=True)


defvjp(nll, lambda ans, z, targets: lambda g: _nll_backward(z, targets, g),
       lambda ans, z, targets: lambda g: -g * log_softmax(z) / z.shape[0])
defvjp(_nll_backward,
       lambda ans, z, targets, g: lambda u: _softmax_jvp(z, u) * (g / z.shape[0]),
       lambda ans, z, targets, g: lambda u: -u * (g / z.shape[0]),
       lambda ans, z, targets, g: lambda u: np.sum((np.exp(log_softmax(z)) - targets) * u)
       / z.shape[0])


# ---- The whole network as three primitives: loss, gradient, Hessian-vector product ------
# Reverse-over-reverse through the layer primitives above (for the reverse pass's
# Hessian-vector products) calls ~200 autograd primitives per product, and on a
# 45,000-parameter net autograd's bookkeeping then costs more than the matrix products.
# So MLP.loss is one primitive whose gradient is one primitive (the same numpy operations,
# in the same order, as autograd through the layers: bit-identical gradients), whose
# derivative is one more: the Hessian-vector product by Pearlmutter's R-operator, reusing
# the forward activations and backward deltas the first two just computed.  Derivatives
# beyond that, and all derivatives with respect to the inputs or targets, fall back to
# autograd through the layer primitives, so every order still works.

class _Recent(threading.local):
    """The last forward and backward pass, to be reused by the next primitive on the same
    arrays (autograd hands the very same array objects to a primitive's derivatives)."""
    forward = None      # (x, inputs, activations, logits)
    backward = None     # (x, inputs, targets, g, deltas, gradient)


class _FusedMLP:
    def __init__(self, sizes):
        self.shapes = [(m, n) for m, n in zip(sizes[:-1], sizes[1:])]
        self.recent = _Recent()
        self.loss = primitive(self._loss)
        self.grad = primitive(self._grad)
        self.hvp = primitive(self._hvp)
        grad0 = grad(self.composite, 0)
        self.grad0 = grad0
        fallback = lambda k: (lambda ans, *args: lambda u: make_vjp(self.composite, k)(*args)[0](u))
        defvjp(self.loss, lambda ans, x, i, t: lambda g: self.grad(x, i, t, g),
               fallback(1), fallback(2))
        grad_c = lambda x, i, t, g: g * grad0(x, i, t)
        fallback_grad = lambda k: (lambda ans, *args: lambda u: make_vjp(
            lambda *a: np.dot(grad_c(*a), u), k)(*args)[0](1.0))
        defvjp(self.grad, lambda ans, x, i, t, g: lambda u: self.hvp(x, i, t, g, u),
               fallback_grad(1), fallback_grad(2), fallback_grad(3))
        hvp_c = lambda x, i, t, g, u: grad(lambda x_: np.dot(grad_c(x_, i, t, g), u))(x)
        defvjp(self.hvp, *[(lambda k: lambda ans, *args: lambda w: make_vjp(
            hvp_c, k)(*args)[0](w))(k) for k in range(5)])

    def composite(self, x, inputs, targets):
        """The loss through the layer primitives (the reference, and the fallback)."""
        h, start = inputs, 0
        for i, (m, n) in enumerate(self.shapes):
            W = np.reshape(x[start:start + m * n], (m, n))
            b = x[start + m * n:start + m * n + n]
            start += m * n + n
            h = dense(h, W, b)
            if i < len(self.shapes) - 1:
                h = tanh(h)
        return nll(h, targets)

    def _params(self, x):
        out, start = [], 0
        for m, n in self.shapes:
            out.append((x[start:start + m * n].reshape(m, n), x[start + m * n:start + m * n + n]))
            start += m * n + n
        return out

    def _forward(self, x, inputs, reuse=True):
        r = self.recent.forward
        if reuse and r is not None and r[0] is x and r[1] is inputs:
            return r[2], r[3]
        hs, h = [inputs], inputs
        params = self._params(x)
        for i, (W, b) in enumerate(params):
            h = onp.dot(h, W) + b                      # dense
            if i < len(params) - 1:
                h = onp.tanh(h)                        # tanh
                hs.append(h)
        self.recent.forward = (x, inputs, hs, h)
        return hs, h

    def _loss(self, x, inputs, targets):
        # A fresh forward pass always (x may have changed in place since the last call);
        # only this call's own derivatives reuse it.
        self.recent.backward = None
        hs, z = self._forward(x, inputs, reuse=False)
        return -onp.sum(log_softmax(z) * targets) / z.shape[0]     # nll

    def _backward(self, x, inputs, targets, g, reuse=True):
        r = self.recent.backward
        if reuse and r is not None and r[0] is x and r[1] is inputs and r[2] is targets \
                and r[3] == g:
            return r[4], r[5]
        hs, z = self._forward(x, inputs)
        params = self._params(x)
        p = onp.exp(log_softmax(z))
        delta = (p - targets) * (g / z.shape[0])                         # _nll_backward
        n = len(params)
        deltas, backs, slopes = [None] * n, [None] * n, [None] * n
        flat = onp.empty(len(x))            # each layer's gradient written into its place
        for i, (dW, db) in reversed(list(enumerate(self._params(flat)))):
            deltas[i] = delta
            onp.sum(delta, axis=0, out=db)                               # _sum_rows
            onp.dot(hs[i].T, delta, out=dW)                              # _t_mm
            if i > 0:
                y = hs[i]
                backs[i] = onp.dot(delta, params[i][0].T)                # _mm_t
                slopes[i] = 1 - y * y                                    # tanh'
                delta = backs[i] * slopes[i]                             # _tanh_backward
        # kept for the Hessian-vector product: softmax, deltas, and tanh' of every layer
        saved = (p, deltas, backs, slopes)
        self.recent.backward = (x, inputs, targets, g, saved, flat)
        return saved, flat

    def _grad(self, x, inputs, targets, g):
        return self._backward(x, inputs, targets, g, reuse=False)[1]

    def _hvp(self, x, inputs, targets, g, u):
        """g * (Hessian of the loss) @ u by the R-operator: forward and backward passes of
        the directional derivative along u, from the stored activations and deltas."""
        hs, z = self._forward(x, inputs)
        (p, deltas, backs, slopes), _ = self._backward(x, inputs, targets, g)
        params, dirs = self._params(x), self._params(u)
        Rh, Rhs = None, [None]
        for i, ((W, b), (U, c)) in enumerate(zip(params, dirs)):
            Rz = onp.dot(hs[i], U) + c if Rh is None else onp.dot(Rh, W) + onp.dot(hs[i], U) + c
            if i < len(params) - 1:
                Rh = slopes[i + 1] * Rz
                Rhs.append(Rh)
        Rdelta = (p * Rz - p * onp.sum(p * Rz, axis=1, keepdims=True)) * (g / z.shape[0])
        out = onp.empty(len(x))
        for i, (RdW, Rdb) in reversed(list(enumerate(self._params(out)))):
            delta = deltas[i]
            onp.sum(Rdelta, axis=0, out=Rdb)
            onp.dot(hs[i].T, Rdelta, out=RdW)
            if Rhs[i] is not None:
                RdW += onp.dot(Rhs[i].T, delta)
            if i > 0:
                y, W, U = hs[i], params[i][0], dirs[i][0]
                Rdelta = (onp.dot(Rdelta, W.T) + onp.dot(delta, U.T)) * slopes[i] \
                    - backs[i] * (2 * y * Rhs[i])
        return out


class MLP:
    """A tanh multi-layer perceptron with a log-softmax output.

    ``MLP([64, 50, 10])`` has one hidden layer of 50 units; ``MLP([64, 10])``
    is multinomial logistic regression.  ``loss(x, inputs, targets)`` is the
    mean negative log-likelihood for one-hot ``targets``.
    """

    def __init__(self, layer_sizes):
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, onp.integer))
                                 or s < 1 for s in sizes):
            raise ValueError(f"layer_sizes must be at least two positive whole numbers (input "
                             f"size, ..., output size), got {layer_sizes!r}")
        sizes = [int(s) for s in sizes]
        self.layer_sizes = sizes
        template = [(onp.zeros((m, n)), onp.zeros(n)) for m, n in zip(sizes[:-1], sizes[1:])]
        flat, self.unflatten = locked_flatten(template)
        self.n_params = len(flat)
        ids = [(onp.full((m, n), 2 * i), onp.full(n, 2 * i + 1))
               for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.groups = locked_flatten(ids)[0].astype(onp.intp)
        self.n_groups = 2 * (len(sizes) - 1)
        self.group_names = [f"{kind}{i + 1}" for i in range(len(sizes) - 1) for kind in ("W", "b")]
        self.fan_in = onp.array([sizes[i // 2] for i in range(self.n_groups)], dtype=float)
        self._split = _splitter([a.shape for pair in template for a in pair])
        self._fused = _FusedMLP(sizes)

    def logits(self, x, inputs):
        """Unnormalized class scores for a batch ``inputs`` of shape (examples, features)."""
        self._check(x, inputs)
        h = inputs
        parts = self._split(x)
        n_layers = len(parts) // 2
        for i in range(n_layers):
            h = dense(h, parts[2 * i], parts[2 * i + 1])
            if i < n_layers - 1:
                h = tanh(h)
        return h

    def predict(self, x, inputs):
        """Log class probabilities, shape (n_examples, n_classes)."""
        return log_softmax(self.logits(x, inputs))

    def loss(self, x, inputs, targets):
        """Mean negative log-likelihood of one-hot ``targets`` (one fused autograd primitive:
        its gradient and Hessian-vector products are single primitives too)."""
        self._check(x, inputs)
        return self._fused.loss(x, inputs, targets)

    def _check(self, x, inputs):
        if np.ndim(inputs) != 2:
            raise ValueError(f"inputs must be a 2-D batch (examples, features), got shape "
                             f"{np.shape(inputs)}; use inputs[None] for a single example")
        if np.shape(x) != (self.n_params,):
            raise ValueError(f"x must be the flat parameter vector of this MLP, shape "
                             f"({self.n_params},), got shape {np.shape(x)}")

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
