"""Momentum SGD, the paper's optimizer, in plain floats and in exactly reversible fixed point.

The dynamics (x uses the NEW velocity, as in the paper's corrected Algorithm 1):

    v_{t+1} = beta_t v_t - (1 - beta_t) g_t,    g_t = grad_x L(x_t, meta, t)
    x_{t+1} = x_t + alpha_t v_{t+1}

In PyTorch terms: SGD(momentum=beta, lr=alpha * (1 - beta)).
``exact_step``/``exact_unstep_x``/``exact_unstep_v`` are the building blocks of
the reverse pass; each is a few lines because ExactArray does the hard part.
``Momentum`` plugs them into the generic loops (see ``revlearn.optimizer``).
"""
from dataclasses import dataclass

import numpy as np

from .optimizer import Plan


def exact_step(X, V, g, alpha, n, d):
    """One exact forward step on ExactArrays X, V given the gradient g at x_t:
    v <- (n/d) v - (1 - n/d) g, then x <- x + alpha v."""
    V.mul(n, d)
    V.sub(g, 1 - n / d)
    X.add(V, alpha)


def exact_unstep_x(X, V, alpha):
    """Recover x_t from x_{t+1} and v_{t+1}: subtract the very same increment.

    ``V`` is the ExactArray or its values as floats (``V.val``: the same increment)."""
    X.sub(V, alpha)


def exact_unstep_v(V, g, n, d):
    """Recover v_t from v_{t+1} and g_t (recomputed at the recovered x_t)."""
    V.add(g, 1 - n / d)
    V.div(n, d)


@dataclass
class Momentum:
    """Momentum SGD with step sizes ``alphas`` and momentum decays ``betas``.

    Each schedule has one value per iteration (length T), or one per iteration
    and parameter group (T x G, with ``groups=`` given to ``hypergrad``).  The
    betas are used as fractions n/d (d = 2**16 by default).  As the gradient
    ``r.d_optimizer`` of a hypergradient, the fields hold d meta / d alphas
    and d meta / d betas, shaped like the schedules.
    """
    alphas: object
    betas: object

    def bind(self, n_params, groups=None, denominator_bits=16):
        """The checked schedules for ``n_params`` parameters: a ``MomentumPlan``."""
        return MomentumPlan(self, n_params, groups, denominator_bits)


class MomentumPlan(Plan):
    """Momentum's side of the protocol in ``revlearn.optimizer``: state (x, v)."""

    names = ("x", "v")

    def __init__(self, opt, n_params, groups, denominator_bits):
        super().__init__({"alphas": opt.alphas, "betas": opt.betas}, n_params, groups,
                         denominator_bits, step_sizes=("alphas",), decays=("betas",))

    def check_init(self, init, n_params):
        extra = [k for k, v in init.items() if k != "v" and v is not None]
        if extra:
            raise ValueError(f"Momentum's initial state is v0 only, got {', '.join(extra)}")

    # ---- float arithmetic --------------------------------------------------------
    def hyper_arrays(self):
        return (self.schedules["alphas"], self.schedules["betas"])

    def init_arrays(self, x0, init):
        """The initial states to differentiate: {"v": v0 (zeros if not given)}."""
        v0 = init.get("v")
        return {"v": np.zeros_like(x0) if v0 is None else v0}

    def float_init(self, x0, init):
        v0 = init.get("v")
        return (x0, np.zeros_like(x0) if v0 is None else v0)

    def wrap(self, d_hyper):
        """The gradients of ``hyper_arrays()`` as a ``Momentum``."""
        return Momentum(alphas=d_hyper[0], betas=d_hyper[1])

    def coefficients(self, t, hyper=None):
        """(alpha, beta, 1 - beta) at iteration t, from ``hyper`` (e.g. autograd boxes) or
        the plan's own schedules."""
        if hyper is None:
            a, b = self.at("alphas", t), self.at("betas", t)
        else:
            a, b = (self.groups.per_param(h, t) for h in hyper)
        return a, b, 1 - b

    def step(self, state, g, coeffs):
        """One float step: v <- b v - (1 - b) g, x <- x + a v (in the arrays' own arithmetic)."""
        x, v = state
        a, b, omb = coeffs
        v = b * v - omb * g
        return (x + a * v, v)

    def unstep_x(self, state, coeffs):
        """Naive float reversal, first half: x_t = x_{t+1} - a v_{t+1}."""
        x, v = state
        return (x - coeffs[0] * v, v)

    def unstep_rest(self, state, g, coeffs):
        """Naive float reversal, second half: v_t = (v_{t+1} + (1 - b) g_t) / b."""
        x, v = state
        _, b, omb = coeffs
        return (x, (v + omb * g) / b)

    # ---- exact arithmetic --------------------------------------------------------
    def exact_step(self, S, g, t):
        exact_step(S[0], S[1], g, self.at("alphas", t), self.numerator("betas", t), self.d)

    def exact_unstep_x(self, S, post, t):
        exact_unstep_x(S[0], post[0], self.at("alphas", t))   # post[0] = v_{t+1} as floats

    def exact_unstep_rest(self, S, g, t):
        exact_unstep_v(S[1], g, self.numerator("betas", t), self.d)

    # ---- adjoint -----------------------------------------------------------------
    def adjoint_init(self, dx):
        return {"x": dx, "v": np.zeros_like(dx), "alphas": self.zeros(),
                "betas": self.zeros(), "_scratch": np.empty_like(dx)}

    def adjoint_step(self, t, adj, post, pre, g):
        """From v_{t+1} = b v_t - (1 - b) g_t and x_{t+1} = x_t + a v_{t+1}, by the chain rule:
        d alpha_t = dx . v_{t+1};  dv += a dx;  d beta_t = dv . (v_t + g_t);
        cotangent of g_t = -(1 - b) dv;  dv *= b.  (``pre`` is overwritten.)"""
        dg = self.adjoint_before(t, adj, post)
        self.adjoint_after(t, adj, pre, g)
        return dg

    def adjoint_before(self, t, adj, post):
        """The half of ``adjoint_step`` that needs neither g_t nor v_t: d alpha_t, dv += a dx,
        and the cotangent of g_t (returned; it lives in scratch until the next step)."""
        a, b = self.at("alphas", t), self.at("betas", t)
        dx, dv, w = adj["x"], adj["v"], adj["_scratch"]
        adj["alphas"][t] = self.groups.reduce_dot(dx, post[0])
        dv += np.multiply(dx, a, out=w)
        # b differs per parameter with per-group momentum: -(1 - b) dv elementwise
        return np.multiply(dv, b - 1, out=w)

    def adjoint_after(self, t, adj, pre, g):
        """The other half: d beta_t = dv . (v_t + g_t), then dv *= b."""
        dv = adj["v"]
        adj["betas"][t] = self.groups.reduce_dot(dv, np.add(pre[0], g, out=pre[0]))
        dv *= self.at("betas", t)

    def gradients(self, adj):
        return Momentum(alphas=adj["alphas"], betas=adj["betas"]), {"v": adj["v"]}
