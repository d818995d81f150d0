"""Checkpointing: the standard way to save memory in reverse mode, for a fair comparison.

``hypergrad_checkpointed`` trains in plain floats, keeping the optimizer's state
every ``every`` steps (default ceil(sqrt(T))).  The reverse pass walks the
segments from last to first: it recomputes each segment forward from its
checkpoint, keeping that segment's states, and runs the same reverse loop as
``hypergrad`` (``reverse_accumulate``) over them.  Memory is about
(T / every + every) states instead of T; the price is one extra forward pass.
This is what JAX's ``remat`` or PyTorch's ``checkpoint`` would give a user,
and what the paper compares reversible learning with.
"""
import math

import numpy as np

from .autodiff import check_finite, derivatives, one_blas_thread_with_jax
from .errors import ReversalError
from .hypergrad import _result, reverse_accumulate
from .progress import Progress
from .rational import DEFAULT_DENOMINATOR_BITS
from .training import fingerprint, prepare


def default_every(T):
    """ceil(sqrt(T)): the interval that balances checkpoints against segment length."""
    return max(1, math.ceil(math.sqrt(T)))


@one_blas_thread_with_jax
def hypergrad_checkpointed(train_loss, meta_loss, x0, alphas=None, betas=None, meta=None, *,
                           optimizer=None, v0=None, groups=None, every=None,
                           denominator_bits=DEFAULT_DENOMINATOR_BITS, progress=False,
                           backend="autograd"):
    """The hypergradient in plain floats with checkpoints every ``every`` steps.

    Same arguments and result as ``revlearn.hypergrad`` (the same rational
    decays n/d; ``buffer_bits`` is 0 and ``exact`` False: nothing is
    reversed), plus ``every``: store the state at t = 0, every, 2 every, ...
    (1 stores every state, T only the first).  Checks that each recomputed
    gradient equals the forward pass's bit for bit (``ReversalError`` if not:
    the loss must be a pure function of (x, meta, t) here too).  ``backend="jax"``
    for losses in jax.numpy.
    """
    opt, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                                denominator_bits, meta, v0, backend)
    T = plan.T
    every = default_every(T) if every is None else every
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or not 1 <= every <= T:
        raise ValueError(f"every must be a whole number of steps in 1..T = {T}, got {every!r}")
    every = int(every)
    d = derivatives(backend)
    gradx = d.train_gradient(train_loss, unflatten)
    hvp = d.train_hvp(gradx)
    f = d.meta_value_and_grad(meta_loss, unflatten)
    n = len(plan.names)

    checkpoints, prints = {}, np.empty(T, dtype=np.uint64)
    state = plan.float_init(x0, plan.init_arrays(x0, init))
    for t in range(T):
        if t % every == 0:
            checkpoints[t] = state        # float_step makes new arrays: no copy needed
        g = gradx(state[0], m, t)
        check_finite(g, t)
        prints[t] = fingerprint(g)
        state = plan.float_step(state, g, t)
    final = dict(zip(plan.names, state))
    value, dx, dm = f(state[0], m)
    check_finite(dx, T, "gradient of meta_loss with respect to x")

    def segments():
        starts = range((T - 1) // every * every, -1, -every)
        for start in (Progress(starts, "segments", leave=False) if progress else starts):
            end = min(start + every, T)
            states = [checkpoints[start]]
            for t in range(start, end):            # recompute the segment, keeping its states
                states.append(plan.float_step(states[-1], gradx(states[-1][0], m, t), t))
            for t in range(end - 1, start - 1, -1):
                g, vjp = hvp(states[t - start][0], m, t)
                if fingerprint(g) != prints[t]:
                    raise ReversalError(
                        f"train_loss gave a different gradient at iteration {t} when its "
                        "segment was recomputed than in the forward pass, so the recomputed "
                        "trajectory is not the trained one. The loss must be a pure function of "
                        "(x, meta, t): seed minibatches and noise by t.")
                post = list(states[t + 1 - start][1:n])
                pre = [np.array(a, dtype=np.float64) for a in states[t - start][1:n]]
                yield t, post, pre, g, vjp
            del states

    adj, dm = reverse_accumulate(plan, segments(), dx, dm)
    d_opt, d_init = plan.gradients(adj)
    return _result(plan, adj["x"], d_opt, d_init, dm, value, final, 0.0, False, unflatten, meta)
