"""Exact hypergradients by running training backwards.

``hypergrad`` trains forward in fixed point (storing only the information that
multiplying by a decay destroys), evaluates the meta-loss, then walks training
backwards, recovering every state and gradient bit for bit while the one
reverse loop (``reverse_accumulate``) accumulates the gradient of the
meta-loss with respect to every hyperparameter.  The same loop runs on states
recovered by other means: recomputed from checkpoints
(``revlearn.checkpoint``) or naively reversed in floats
(``revlearn.naive_hypergrad``).  ``hypergrad_unrolled`` gets the same numbers
by letting autograd differentiate the whole unrolled loop (which stores
everything): the check and the memory baseline.
"""
from dataclasses import dataclass, field

import numpy as np
from autograd import value_and_grad
from autograd.tracer import getval

from .autodiff import (LOCK, check_finite, check_result_finite, derivatives, scalar_loss,
                       one_blas_thread_with_jax,
                       train_gradient, _explained)
from .buffer import InfoBuffer
from .errors import ReversalError
from .fixedpoint import DEFAULT_FRAC_BITS
from .progress import Progress
from .rational import DEFAULT_DENOMINATOR_BITS
from .training import ExactRun, fingerprint, prepare, train_exact

__all__ = ["HypergradResult", "hypergrad", "hypergrad_unrolled", "reverse_accumulate",
           "train_exact", "ExactRun"]


@dataclass
class HypergradResult:
    """What ``hypergrad`` returns.  Gradients have the shapes of their inputs.

    ``d_optimizer`` holds the schedule gradients as an optimizer of the same
    type (``.alphas``, ``.betas`` for ``Momentum``; ``.alphas``, ``.beta1s``,
    ``.beta2s``, ``.eps`` for ``Adam``); ``d_alphas``, ``d_betas``, ``d_v0`` and
    ``v_final`` are the momentum names for them.
    """
    x_final: np.ndarray
    meta_loss: float
    d_x0: np.ndarray
    d_meta: object
    d_optimizer: object
    buffer_bits: float      # bits in the information buffer after the forward pass
    exact: bool             # the initial state recovered bit for bit, buffer back to empty
    T: int
    final_state: dict = field(default_factory=dict)   # the optimizer's states after training
    d_init: dict = field(default_factory=dict)        # gradients w.r.t. its initial states
    rounding_share: float = 0.0   # share of the training steps lost to the fixed-point grid

    @property
    def bits_per_param_per_step(self):
        if len(self.x_final) == 0:
            return 0.0
        return self.buffer_bits / (len(self.x_final) * self.T)

    def _momentum(self, what):
        if not hasattr(self.d_optimizer, "betas"):
            raise AttributeError(f"{what} belongs to momentum SGD; this result is for "
                                 f"{type(self.d_optimizer).__name__}: use r.d_optimizer "
                                 f"({', '.join(vars(self.d_optimizer))})")

    @property
    def d_alphas(self):
        return self.d_optimizer.alphas

    @property
    def d_betas(self):
        self._momentum("d_betas")
        return self.d_optimizer.betas

    @property
    def d_v0(self):
        self._momentum("d_v0")
        return self.d_init["v"]

    @property
    def v_final(self):
        self._momentum("v_final")
        return self.final_state["v"]


def reverse_accumulate(plan, steps, dx, dm, check=True, adj=None):
    """The reverse-mode recursion over a training run, walked from t = T-1 down to 0.

    ``steps`` yields ``(t, post, pre, g, vjp)``: the other states' float values
    at t + 1 and at t, the gradient g_t and its Hessian-vector product ``vjp``
    (cotangent c -> (H_xx c, H_mx c)).  ``dx``, ``dm``: d meta / d x_T and the
    direct d meta / d meta.  The optimizer's ``adjoint_step`` does its algebra
    and names the cotangent of g_t; this loop asks for the one Hessian-vector
    product.  A step that already has it (``vjp`` is then the pair (H_xx c,
    H_mx c) for the c that ``plan.adjoint_before`` gave it from ``adj``, passed
    in here) leaves this loop ``plan.adjoint_after``.  Returns ``(adjoint
    state, dm)``: adjoint["x"] is d meta / d x_0.  ``check=False`` lets NaN and
    inf through (for the naive reversal's damage).
    """
    adj = plan.adjoint_init(dx) if adj is None else adj
    for t, post, pre, g, vjp in steps:
        if callable(vjp):
            hx, hm = vjp(plan.adjoint_step(t, adj, post, pre, g))
        else:
            plan.adjoint_after(t, adj, pre, g)
            hx, hm = vjp
        hx = np.asarray(hx)
        if check and not np.isfinite(hx).all():
            check_result_finite("d_x0", hx, f"its Hessian-vector product became non-finite "
                                            f"at iteration {t}")
        adj["x"] += hx
        dm = dm + hm
    return adj, dm


def _views(S, out):
    """The float values of ExactArrays S into the scratch arrays ``out`` (exactly the
    values ``E.val`` would give)."""
    for E, o in zip(S, out):
        E.values(out=o)
    return out


def exact_reversal(run, hvp, progress=False, grad_hvp=None, adj=None):
    """Walk an ``ExactRun`` backwards in place: the ``steps`` of ``reverse_accumulate``.

    Recovers x_t by undoing its update with the states at t + 1, recomputes
    g_t at x_t (and checks its fingerprint against the forward pass), then
    recovers the other states.  Raises ``ReversalError`` for a gradient that
    changed between the passes.  With ``grad_hvp`` (a backend's g_t and H_t c
    in one call), ``adj`` and a plan that has ``adjoint_before``, each step
    asks for both at once; should that call's g_t differ in a bit from the
    forward pass's (another compiled program may round differently), g_t is
    recomputed the forward pass's way."""
    S, plan, m = run.state, run.plan, run.meta_flat
    fused = grad_hvp is not None and adj is not None and hasattr(plan, "adjoint_before")
    size = len(S[0])
    post = [np.empty(size) for _ in S[1:]]
    pre = [np.empty(size) for _ in S[1:]]
    ts = range(plan.T - 1, -1, -1)
    for t in (Progress(ts, "reverse", leave=False) if progress else ts):
        _views(S[1:], post)
        try:
            plan.exact_unstep_x(S, post, t)
            x = S[0].val
            if fused:
                g, *products = grad_hvp(x, m, t, plan.adjoint_before(t, adj, post))
                if fingerprint(g) != run.fingerprints[t]:
                    g = hvp(x, m, t)[0]       # the gradient alone, as the forward pass had it
            else:
                g, products = hvp(x, m, t)
            if fingerprint(g) != run.fingerprints[t]:
                raise ReversalError(
                    f"train_loss gave a different gradient at iteration {t} in the reverse pass "
                    "than in the forward pass, so training cannot be reversed exactly. The loss "
                    "must be a pure function of (x, meta, t): make minibatches and any noise "
                    "(dropout, data augmentation) depend only on t through a seeded generator, "
                    "e.g. np.random.default_rng([seed, t]), never on a global random state.")
            plan.exact_unstep_rest(S, g, t)
        except OverflowError as e:
            raise OverflowError(f"in the reverse pass at iteration {t}: {e}") from None
        yield t, post, _views(S[1:], pre), g, products


@one_blas_thread_with_jax
def hypergrad(train_loss, meta_loss, x0, alphas=None, betas=None, meta=None, *, optimizer=None,
              v0=None, groups=None, frac_bits=DEFAULT_FRAC_BITS,
              denominator_bits=DEFAULT_DENOMINATOR_BITS, buffer=InfoBuffer, callback=None,
              progress=False, backend="autograd"):
    """Exact gradient of ``meta_loss(x_T, meta)`` with respect to every hyperparameter.

    Runs T steps of training on ``train_loss(x, meta, t)`` from ``x0`` in exact
    fixed point, then runs them backwards.  The schedules are ``alphas,
    betas`` (momentum SGD, velocity ``v0``, default 0) or ``optimizer=``
    (``revlearn.Momentum(alphas, betas)``, ``revlearn.Adam(...)``): length-T,
    or T x G with ``groups`` (one group id per parameter).  Decays are used as
    the fractions n/d with d = 2**denominator_bits.  ``buffer`` is the buffer
    class (``InfoBuffer`` or ``BigIntBuffer``); ``callback(t, X, V)`` (for
    momentum; ``callback(t, *states)`` in general) sees the ExactArrays after
    each forward step and must not change them.  ``backend="jax"`` takes losses
    written in jax.numpy and jit-compiles their derivatives (``revlearn.jax_backend``).
    Returns a ``HypergradResult``; raises (never returns a wrong gradient) if the
    reversal is not bit-exact or a result is not finite.
    """
    run = train_exact(train_loss, x0, alphas, betas, meta, optimizer=optimizer, v0=v0,
                      groups=groups, frac_bits=frac_bits, denominator_bits=denominator_bits,
                      buffer=buffer, callback=callback, progress=progress, backend=backend)
    opt, _, _, _, _, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                         denominator_bits, meta, v0, backend)
    d = derivatives(backend)
    gradient = d.train_gradient(train_loss, unflatten)
    hvp = d.train_hvp(gradient)
    grad_hvp = d.train_grad_hvp(gradient) if hasattr(d, "train_grad_hvp") else None
    f = d.meta_value_and_grad(meta_loss, unflatten)
    S, plan, T = run.state, run.plan, run.plan.T
    buffer_bits = run.buffer_bits
    final = {name: E.val for name, E in zip(plan.names, S)}

    value, dx, dm = f(final["x"], run.meta_flat)
    if not np.isfinite(value):
        raise FloatingPointError(f"meta_loss is {value} at the final weights: training "
                                 "diverged or the meta-loss is undefined there")
    check_finite(dx, T, "gradient of meta_loss with respect to x")
    check_result_finite("d_meta", dm, "already in the direct gradient of meta_loss with "
                                      "respect to meta at the final weights")
    adj = plan.adjoint_init(dx)
    adj, dm = reverse_accumulate(plan, exact_reversal(run, hvp, progress, grad_hvp, adj), dx, dm,
                                 adj=adj)

    exact = all((E.k == k0).all() for E, k0 in zip(S, run.init_k)) and \
        all(E.buffer.is_empty() for E in S)
    if not exact:
        raise ReversalError(
            "the reverse pass did not recover the initial state bit for bit; the hypergradient "
            "would be wrong, so none is returned. This should not happen with a deterministic "
            "loss; please report it with the code that triggers it.")
    d_opt, d_init = plan.gradients(adj)
    return _result(plan, adj["x"], d_opt, d_init, dm, value, final, buffer_bits, True,
                   unflatten, meta, run.rounding_share)


def _result(plan, d_x0, d_opt, d_init, dm, value, final, buffer_bits, exact, unflatten, meta,
            share=0.0):
    """Package the gradients, after checking that every one of them is finite."""
    checks = [("d_x0", d_x0)] + [(f"d_{k}0", v) for k, v in d_init.items()] + \
        [(f"d_optimizer.{k}", v) for k, v in vars(d_opt).items()] + [("d_meta", dm)]
    for name, v in checks:
        a = np.asarray(v, dtype=np.float64)
        if np.isfinite(a).all():
            continue
        where = "in the reverse pass"
        if a.ndim >= 1 and a.shape[0] == plan.T:   # a schedule: say where it went wrong
            bad = np.flatnonzero(~np.isfinite(a.reshape(plan.T, -1)).all(axis=1))
            where = (f"from iteration {int(bad.max())} on (the reverse pass runs from "
                     f"t = {plan.T - 1} down to 0)")
        check_result_finite(name, a, where)
    return HypergradResult(x_final=final["x"], meta_loss=value, d_x0=d_x0,
                           d_meta=dm if meta is None else unflatten(dm), d_optimizer=d_opt,
                           buffer_bits=buffer_bits, exact=exact, T=plan.T,
                           final_state={k: v for k, v in final.items() if k != "x"},
                           d_init=d_init, rounding_share=share)


def hypergrad_unrolled(train_loss, meta_loss, x0, alphas=None, betas=None, meta=None, *,
                       optimizer=None, v0=None, groups=None,
                       denominator_bits=DEFAULT_DENOMINATOR_BITS):
    """The same hypergradient by autograd through the whole unrolled training loop.

    Float arithmetic, the same fractions n/d for the decays as ``hypergrad``;
    autograd keeps every intermediate of all T steps, so memory grows linearly
    in T.  Used as an independent check and as the memory baseline.
    """
    opt, plan, x0, init, m, unflatten = prepare(x0, alphas, betas, optimizer, groups,
                                                denominator_bits, meta, v0)
    gradx_raw = train_gradient(train_loss, unflatten)
    inits = plan.init_arrays(x0, init)     # the initial states we differentiate
    final = {}

    def run(params):
        x, inits_, hyper, m_ = params
        state = plan.float_init(x, inits_)
        for t in range(plan.T):
            state = plan.float_step(state, gradx_raw(state[0], m_, t), t, hyper)
        final.update({k: getval(v) for k, v in zip(plan.names, state)})
        return meta_loss(state[0], unflatten(m_))

    try:
        with LOCK:
            value, (d_x0, d_init, d_hyper, dm) = value_and_grad(run)(
                (x0, inits, plan.hyper_arrays(), m))
    except (ValueError, AttributeError, NotImplementedError) as e:
        raise _explained(e, "the unrolled training loop", "reverse over the whole loop") from e
    value = scalar_loss(value, "meta_loss")
    return _result(plan, d_x0, plan.wrap(d_hyper), d_init, np.asarray(dm, dtype=np.float64),
                   value, final, 0.0, False, unflatten, meta)
