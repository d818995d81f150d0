"""Turning a user's loss into the gradients revlearn needs, with clear errors.

``train_loss(x, meta, t)`` and ``meta_loss(x, meta)`` are written with
``autograd.numpy``.  ``meta`` may be any autograd container (array, tuple,
list, dict); we flatten it with ``autograd.misc.flatten`` so the engine only
ever sees one flat vector of hyperparameters.

autograd records every computation it differentiates on one global trace
stack, so two threads tracing at once corrupt each other's gradients.  Every
trace and every backward pass here holds ``LOCK``: revlearn's entry points are
safe to call from several threads (their numpy work runs in parallel; only the
autograd calls take turns).
"""
import functools
import threading

import numpy as np
from autograd import grad, make_vjp, value_and_grad
from autograd.misc import flatten

LOCK = threading.RLock()    # held while autograd traces or runs a backward pass

_HOWTO = ("Write the loss with autograd.numpy (import autograd.numpy as np), return a scalar, "
          "and avoid in-place assignment (a[i] = ...), float()/np.asarray() on inputs, and "
          "non-autograd libraries inside it.")


def locked_flatten(value):
    """``autograd.misc.flatten`` taking its turn on the lock: it is itself a VJP (it traces),
    and so is the ``unflatten`` it returns."""
    with LOCK:
        flat, raw_unflatten = flatten(value)

    def unflatten(v):
        with LOCK:
            return raw_unflatten(v)
    return flat, unflatten


def flat_meta(meta):
    """Flatten ``meta`` (None means no hyperparameters) -> (flat vector, unflatten)."""
    if meta is None:
        return np.zeros(0), lambda m: None
    try:
        flat, unflatten = locked_flatten(meta)
        flat = np.asarray(flat)
    except TypeError as e:
        if isinstance(meta, (int, np.integer, complex)):
            flat = np.asarray(meta)    # the dtype message below says what to do
        else:
            raise TypeError(f"meta must be an array or an autograd container (tuple, list, "
                            f"dict) of arrays, got {type(meta).__name__}: {e}") from None
    if flat.dtype.kind != "f":
        raise TypeError(f"meta must hold floating-point numbers, got dtype {flat.dtype} "
                        f"({meta!r:.60}): autograd cannot differentiate integers or complex "
                        "numbers, so write e.g. -2.0 instead of -2")
    return flat.astype(np.float64), unflatten


def _explained(err, name, what):
    return TypeError(f"could not differentiate {name} with autograd ({what}): "
                     f"{type(err).__name__}: {err}. {_HOWTO}")


def train_gradient(train_loss, unflatten):
    """g(x, m, t) = d train_loss / dx, with a clear error if autograd cannot do it."""
    gx = grad(lambda x, m, t: train_loss(x, unflatten(m), t), 0)

    def g(x, m, t):
        try:
            with LOCK:
                out = gx(x, m, t)
        except (TypeError, ValueError, AttributeError, NotImplementedError) as e:
            raise _explained(e, "train_loss", f"gradient at iteration {t}") from e
        return out  # left unconverted: it may be an autograd box (second derivatives)
    return g


def train_hvp(g):
    """For iteration t at (x, m): returns (g, vjp) where vjp(dv) = (H_xx dv, H_mx dv)."""
    def hvp(x, m, t):
        try:
            with LOCK:
                if m.size:
                    vjp_xm, gval = make_vjp(lambda xm: g(xm[0], xm[1], t))((x, m))
                else:   # no hyperparameters: differentiate in x alone (no tuple to box)
                    vjp_x, gval = make_vjp(lambda x_: g(x_, m, t))(x)
        except TypeError as e:
            raise _explained(e, "train_loss", f"second derivative at iteration {t}") from e

        def vjp(dv):
            with LOCK:
                return vjp_xm(dv) if m.size else (vjp_x(dv), m)
        return np.asarray(gval), vjp
    return hvp


def meta_value_and_grad(meta_loss, unflatten):
    """(x, m) -> (meta_loss value, d/dx, d/dm)."""
    vg = value_and_grad(lambda xm: meta_loss(xm[0], unflatten(xm[1])))

    def f(x, m):
        try:
            with LOCK:
                val, (dx, dm) = vg((x, m))
        except (TypeError, ValueError, AttributeError, NotImplementedError) as e:
            raise _explained(e, "meta_loss", "gradient at the final weights") from e
        return (scalar_loss(val, "meta_loss"), np.asarray(dx, dtype=np.float64),
                np.asarray(dm, dtype=np.float64))
    return f


def scalar_loss(value, name):
    """A loss value as a Python float; a TypeError unless it is one real number of shape ()."""
    if np.ndim(value) != 0 or np.iscomplexobj(value):
        raise TypeError(f"{name} must return one real number (shape ()), got "
                        f"{np.asarray(value).dtype} of shape {np.shape(value)}; wrap it in "
                        "np.sum(...) or index it, e.g. loss[0]")
    return float(value)


def check_finite(g, t, what="gradient of train_loss"):
    """Raise FloatingPointError naming iteration t if g holds NaN or inf."""
    if not np.isfinite(g).all():
        bad = int(np.sum(~np.isfinite(g)))
        raise FloatingPointError(
            f"the {what} is not finite at iteration {t} ({bad} NaN/inf entries). Training "
            "diverged or the loss is undefined there: lower the step sizes alpha, check the "
            "loss (log of 0? overflow in exp?) and the initial weights.")


def check_result_finite(name, value, where):
    """Raise FloatingPointError if a returned hypergradient ``name`` holds NaN or inf."""
    a = np.asarray(value, dtype=np.float64)
    if not np.isfinite(a).all():
        bad = int(np.sum(~np.isfinite(a)))
        raise FloatingPointError(
            f"the hypergradient {name} is not finite ({bad} NaN/inf entries), {where}. It is "
            "not returned: check meta_loss and train_loss for a derivative that is infinite "
            "where they are evaluated (sqrt or log at 0, 1/x at 0, overflow in exp).")


BACKENDS = ("autograd", "jax")


def derivatives(backend="autograd"):
    """The module that differentiates the user's losses: this one (autograd) or
    ``revlearn.jax_backend`` (losses in jax.numpy, derivatives jit-compiled).  Both offer
    ``flat_meta``, ``train_gradient``, ``train_hvp`` and ``meta_value_and_grad``."""
    if backend == "autograd":
        import sys
        return sys.modules[__name__]
    if backend == "jax":
        from . import jax_backend
        return jax_backend
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def one_blas_thread_with_jax(entry_point):
    """Run ``entry_point`` with numpy's BLAS on one thread when it is called with
    backend="jax".  Its loops alternate numpy work and compiled JAX calls; OpenBLAS's
    threads keep spinning for a while after each numpy product and take the cores that
    XLA's own threads compute on (on 2 cores: 8.1 -> 6.3 ms per hypergradient step of the
    784-50-50-50-10 net).  Uses threadpoolctl, in the main thread only: the limit is
    process-wide, and OpenBLAS ignores a change made from another thread once the main
    thread has set one, so a run in a worker thread could neither set it reliably nor be
    sure to restore it.  Autograd losses are left alone."""
    @functools.wraps(entry_point)
    def wrapped(*args, backend="autograd", **kwargs):
        if backend != "jax" or threading.current_thread() is not threading.main_thread():
            return entry_point(*args, backend=backend, **kwargs)
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1, user_api="blas"):
            return entry_point(*args, backend=backend, **kwargs)
    return wrapped
