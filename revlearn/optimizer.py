"""The protocol of a reversible optimizer: what the generic loops ask of it.

An optimizer is a small dataclass of hyperparameter schedules
(``Momentum(alphas, betas)``, ``Adam(alphas, beta1s, beta2s, eps)``).  The
loops in ``training.py`` (float and exact forward passes) and ``hypergrad.py``
(the one reverse loop, fed by exact reversal or by checkpoints) never look
inside it; they call ``optimizer.bind(n_params, groups, denominator_bits)``
once and then talk to the returned ``Plan``:

state
    ``names``: the state arrays, x first (("x", "v") for momentum).
    ``formats(frac_bits)``: the fixed-point fractional bits of each.
float arithmetic (plain training, the unrolled oracle, checkpointing, naive reversal)
    ``float_init(x0, init)``; ``coefficients(t, hyper=None)``: the step's
    numbers at iteration t (from ``hyper``, the hyperparameters as autograd
    boxes, or from ``hyper_arrays()``); ``step(state, g, coeffs)``: one step,
    in whatever arithmetic the arrays and coefficients have (float64, float16,
    autograd boxes); ``unstep_x(state, coeffs)`` and ``unstep_rest(state, g,
    coeffs)``: the same step undone naively, for contrast.
exact arithmetic
    ``exact_step(S, g, t)``: S, a list of ``ExactArray``, from t to t + 1.
    ``exact_unstep_x(S, post, t)``: x_{t+1} -> x_t, given ``post``, the float
    values of the other states at t + 1.  Then the loop computes g_t at x_t.
    ``exact_unstep_rest(S, g, t)``: the other states from t + 1 back to t.
adjoint (the reverse-mode recursion, shared by every way of getting states)
    ``adjoint_init(dx)``: the adjoints of the final state (d meta / d x_T, 0).
    ``adjoint_step(t, adj, post, pre, g)``: updates ``adj`` from t + 1 to t
    and the hyperparameter gradients; returns the cotangent c of g_t, for
    which the loop asks one Hessian-vector product: adj["x"] += H_t c.
    ``gradients(adj)``: ``(d_optimizer, d_init)``, the gradients as an
    optimizer of the same type and a dict of initial-state gradients.
    Optional: ``adjoint_before(t, adj, post)`` and ``adjoint_after(t, adj,
    pre, g)``, ``adjoint_step`` in two halves, for an optimizer whose
    cotangent of g_t is known before g_t (momentum's is -(1 - b)(dv + a dx)).
    With them, a backend that has ``train_grad_hvp`` (JAX) computes g_t and
    H_t c in one compiled call instead of two.

Adding an optimizer is one module with a dataclass and a ``Plan``.
"""
import numpy as np

from .rational import check_denominator_bits, to_rational
from .schedules import check_schedules


class Plan:
    """Common parts of every optimizer's plan: schedules, groups, rational decays."""

    names = ("x",)

    def __init__(self, schedules, n_params, groups, denominator_bits, *, step_sizes=(),
                 decays=()):
        arrays, self.groups = check_schedules(schedules, n_params, groups,
                                              step_sizes=step_sizes, decays=decays)
        self.n_params = n_params
        self.T = len(next(iter(arrays.values())))
        # denominator_bits=None: float training with the decays as given (no fractions)
        self.d = None if denominator_bits is None else 1 << check_denominator_bits(denominator_bits)
        self.schedules = {}
        self.numerators = {}
        for name, a in arrays.items():
            if name in decays and self.d is not None:
                n, _ = to_rational(a, denominator_bits)
                self.numerators[name] = n
                a = n / self.d        # the fractions n/d are the decays, everywhere
            self.schedules[name] = a

    def at(self, name, t):
        """Schedule ``name`` at iteration t: a scalar or one value per parameter."""
        return self.groups.per_param(self.schedules[name], t)

    def numerator(self, name, t):
        """The integer n of decay ``name`` = n/d at iteration t (scalar or per parameter)."""
        return self.groups.per_param(self.numerators[name], t)

    def zeros(self):
        """A zero array shaped like the schedules, for their gradients."""
        return np.zeros_like(next(iter(self.schedules.values())))

    def float_step(self, state, g, t, hyper=None):
        """``step`` with iteration t's coefficients."""
        return self.step(state, g, self.coefficients(t, hyper))

    def formats(self, frac_bits):
        return (frac_bits,) * len(self.names)

    def check_init(self, init, n_params):
        """Refuse initial states this optimizer does not have."""
        extra = [k for k, v in init.items() if v is not None]
        if extra:
            raise ValueError(f"{type(self).__name__[:-4]} has no initial state "
                             f"{', '.join(extra)} (it starts from zero)")
