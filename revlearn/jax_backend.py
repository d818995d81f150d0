"""Losses written in JAX: gradients and Hessian-vector products jit-compiled by XLA.

``revlearn.hypergrad(..., backend="jax")`` (and ``train``, ``train_exact``,
``hypergrad_checkpointed``) take ``train_loss(x, meta, t)`` and
``meta_loss(x, meta)`` written with ``jax.numpy``.  Everything else is the same
engine: the exact fixed-point arithmetic, the information buffer, the one
reverse loop and every check (the gradient fingerprints, the final bit-for-bit
test, NaN/inf, range).  Only the derivatives the loops ask for come from
here instead of autograd:

    gradient     g(x, m, t) = d train_loss / dx          (one jitted call)
    HVP          (H_xx c, H_mx c) for a cotangent c      (one jitted call)
    both         g and (H_xx c, H_mx c) when c is known before g (momentum's)
    meta         meta_loss and its gradients in x and m   (one jitted call)

Inside the jitted loss ``t`` is a traced integer, not a Python int: pick
minibatches by indexing with it (``inputs[batch_table[t]]``, with the table
made once from ``revlearn.batch_indices``) and never call ``int(t)``.  Importing
this module switches JAX to float64 (``jax_enable_x64``), which exact training
needs.  Install with ``pip install "revlearn[jax]"``.
"""
import weakref

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
except ImportError as e:          # pragma: no cover - exercised only without jax
    raise ImportError('backend="jax" needs JAX: pip install "revlearn[jax]" (or jax[cpu])') from e

jax.config.update("jax_enable_x64", True)

_HOWTO = ("Write it with jax.numpy and return a scalar. Inside the compiled loss t is a traced "
          "integer: index jnp arrays with it (inputs[batch_table[t]], with inputs and the table "
          "made jnp arrays) or use jax.lax.dynamic_slice, and "
          "never call int(t), float(...) or Python if/for on traced values.")


def _explained(err, name, what):
    return TypeError(f"could not differentiate {name} with JAX ({what}): "
                     f"{type(err).__name__}: {str(err).splitlines()[0]} {_HOWTO}")


def _errors():
    return (TypeError, ValueError, jax.errors.JAXTypeError if hasattr(jax.errors, "JAXTypeError")
            else TypeError, jax.errors.ConcretizationTypeError)


# Compiled functions, kept per loss function and meta structure: jax.jit compiles once per
# function object, and a training run calls the same derivatives T times (and a
# meta-optimization calls hypergrad again and again), so build each of them once.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(kind, fn, unflatten, build):
    per_fn = _COMPILED.setdefault(fn, {})
    key = (kind, getattr(unflatten, "structure", None))
    if key not in per_fn:
        per_fn[key] = build()
    return per_fn[key]


def _none(m):
    return None


_none.structure = "none"


def flat_meta(meta):
    """Flatten ``meta`` (a JAX pytree: array, tuple, list, dict) -> (flat float64, unflatten)."""
    if meta is None:
        return np.zeros(0), _none
    flat, unravel = ravel_pytree(meta)
    leaves, tree = jax.tree_util.tree_flatten(meta)
    unravel.structure = (tree, tuple((np.shape(v), np.asarray(v).dtype.str) for v in leaves))
    flat = np.asarray(flat)
    if flat.dtype.kind != "f":
        raise TypeError(f"meta must hold floating-point numbers, got dtype {flat.dtype}: "
                        "JAX cannot differentiate integers, so write e.g. -2.0 instead of -2")
    return flat.astype(np.float64), unravel


def train_gradient(train_loss, unflatten):
    """g(x, m, t) = d train_loss / dx, jit-compiled once, as a numpy float64 array."""
    loss = lambda x, m, t: train_loss(x, unflatten(m), t)
    gx = _compiled("grad", train_loss, unflatten, lambda: jax.jit(jax.grad(loss, argnums=0)))

    def g(x, m, t):
        try:
            return np.asarray(gx(x, m, t))  # a read-only view of XLA's result: no copy
        except _errors() as e:
            raise _explained(e, "train_loss", f"gradient at iteration {t}") from e
    g.loss, g.source = loss, (train_loss, unflatten)
    return g


def train_hvp(g):
    """For iteration t at (x, m): (g, vjp) with vjp(c) = (H_xx c, H_mx c), both jitted."""
    loss = g.loss
    grad_x = jax.grad(loss, argnums=0)

    def build():
        @jax.jit
        def products(x, m, t, c):
            _, pull = jax.vjp(lambda x_, m_: grad_x(x_, m_, t), x, m)
            return pull(c)
        return products
    products = _compiled("hvp", *g.source, build)

    def hvp(x, m, t):
        gval = g(x, m, t)

        def vjp(c):
            try:
                hx, hm = products(x, m, t, c)
            except _errors() as e:
                raise _explained(e, "train_loss", f"second derivative at iteration {t}") from e
            return np.asarray(hx), np.asarray(hm)
        return gval, vjp
    return hvp


def train_grad_hvp(g):
    """(x, m, t, c) -> (g, H_xx c, H_mx c) in one jitted call, for a cotangent c known
    before g (momentum's): one pass through the loss and its derivatives instead of the
    two that ``train_hvp``'s separate gradient and products take."""
    loss = g.loss
    grad_x = jax.grad(loss, argnums=0)

    def build():
        @jax.jit
        def both(x, m, t, c):
            gval, pull = jax.vjp(lambda x_, m_: grad_x(x_, m_, t), x, m)
            return (gval,) + pull(c)
        return both
    both = _compiled("grad_hvp", *g.source, build)

    def grad_hvp(x, m, t, c):
        try:
            gval, hx, hm = both(x, m, t, c)
        except _errors() as e:
            raise _explained(e, "train_loss", f"second derivative at iteration {t}") from e
        # read-only views, no copies; asarray waits for the result (c is reused scratch)
        return np.asarray(gval), np.asarray(hx), np.asarray(hm)
    return grad_hvp


def meta_value_and_grad(meta_loss, unflatten):
    """(x, m) -> (meta_loss value, d/dx, d/dm), jitted."""
    vg = _compiled("meta", meta_loss, unflatten, lambda: jax.jit(jax.value_and_grad(
        lambda x, m: meta_loss(x, unflatten(m)), argnums=(0, 1))))

    def f(x, m):
        try:
            val, (dx, dm) = vg(x, m)
        except _errors() as e:
            raise _explained(e, "meta_loss", "gradient at the final weights") from e
        if np.ndim(val) != 0:
            raise TypeError(f"meta_loss must return one real number (shape ()), got shape "
                            f"{np.shape(val)}")
        return float(val), np.array(dx, dtype=np.float64), np.array(dm, dtype=np.float64)
    return f


def mlp_loss(sizes):
    """The loss of ``revlearn.MLP(sizes)`` in JAX, with the same flat parameter layout (so
    ``MLP.init``, ``groups`` and ``fan_in`` carry over): ``loss(x, inputs, targets)`` is the
    mean negative log-likelihood of one-hot targets under a tanh MLP's softmax output."""
    shapes = [(m, n) for m, n in zip(sizes[:-1], sizes[1:])]

    def loss(x, inputs, targets):
        h, start = inputs, 0
        for i, (m, n) in enumerate(shapes):
            W = x[start:start + m * n].reshape(m, n)
            b = x[start + m * n:start + m * n + n]
            start += m * n + n
            h = h @ W + b
            if i < len(shapes) - 1:
                h = jnp.tanh(h)
        logp = jax.nn.log_softmax(h, axis=1)
        return -jnp.sum(logp * targets) / inputs.shape[0]
    return loss


def momentum_hypergrad_reference(loss, meta_loss, x0, alphas, betas, *, checkpoint=False):
    """JAX's own hypergradient of momentum SGD (the same dynamics, the rational betas as
    given), by ``jax.grad`` through a ``lax.scan`` of T steps: the whole trajectory kept
    (``checkpoint=False``) or each step recomputed in the backward pass
    (``checkpoint=True``: ``jax.checkpoint`` per step).  ``loss(x, t)``, ``meta_loss(x)``
    in jax.numpy.  Returns a jitted function (alphas, betas, x0) -> (meta loss, gradients);
    for benchmarks, as what a JAX user would write instead of revlearn."""
    g = jax.grad(loss)

    def step(carry, inputs):
        x, v = carry
        a, b, t = inputs
        v = b * v - (1 - b) * g(x, t)
        return (x + a * v, v), None

    body = jax.checkpoint(step) if checkpoint else step

    def meta(alphas_, betas_, x0_):
        (x, _), _ = jax.lax.scan(body, (x0_, jnp.zeros_like(x0_)),
                                 (alphas_, betas_, jnp.arange(len(alphas_))))
        return meta_loss(x)
    return jax.jit(jax.value_and_grad(meta, argnums=(0, 1, 2)))
