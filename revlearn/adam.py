"""Adam, exactly reversed: the paper's open question ("the memory saving trick could
presumably be applied to ... Adam").

PyTorch's Adam with per-iteration (optionally per-group) schedules, every decay
a fraction n/d (in the averages, in 1 - beta and in the bias corrections):

    g_t     = grad_x L(x_t, meta, t)
    m_{t+1} = beta1_t m_t + (1 - beta1_t) g_t
    s_{t+1} = beta2_t s_t + (1 - beta2_t) g_t * g_t
    c1_t = 1 - prod_{i<=t} beta1_i,   c2_t = 1 - prod_{i<=t} beta2_i
    x_{t+1} = x_t - alpha_t (m_{t+1} / c1_t) / (sqrt(s_{t+1} / c2_t) + eps)

Why it reverses: the state (x, m, s) at t + 1 determines the state at t.  The
x increment is a float function of m_{t+1} and s_{t+1}, which are in hand, so
recomputing it bit for bit and subtracting the same rounded integer recovers
x_t; then g_t = grad L(x_t); then m_t and s_t by exact subtraction and exact
division by beta (the buffer keeps what the multiplies destroyed).  Plain SGD,
x_{t+1} = x_t - alpha g(x_t), does not reverse this way: undoing it needs
g(x_t), which needs the very x_t we are looking for.

The second moment s spans many decades (g**2 of every parameter), and the
step divides by its square root, so its *relative* precision matters: a fixed
grid fine enough for a gradient of 1e-5 (s ~ 1e-13) cannot also hold s = 1e6.
So s is kept like a floating-point number with exact arithmetic: each
parameter's s has its own grid, which moves as s does.  At the first step where
a parameter's gradient is not zero (sized for g**2, the level its average fills
to), and whenever its s has shrunk to fewer than ``s_precision_bits`` - 24
significant bits, the grid gets finer (the integer is
shifted left: nothing is lost); whenever s is about to outgrow its integer, the
grid gets coarser and the dropped low bits go into the buffer.  The reverse pass
undoes each move at the same step (the moves are logged: a few per parameter
over a run, not one per step).  So s keeps 22 to 59 significant bits at any size
(its grid is at most 2**-120: smaller values are far below eps and do not matter).
The first moment m keeps one absolute grid (2**-frac_bits, like x): its
relative precision is that of the gradient's size (3.5e-12 for a gradient of
1e-3), which is plenty except for gradients below about 1e-6.  (Refining m's
grid too would make every sign change of m cost buffer bits.)  Each of m and s
has its own information buffer, growing by log2(1/beta1) and log2(1/beta2)
bits per parameter per step (plus the rare bits dropped when s's grid coarsens).
"""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from .fixedpoint import MAX_ELEMENT_FRAC_BITS
from .optimizer import Plan

S_EXTRA_RANGE_BITS = 6      # s = g**2 gets at least 2**6 times the range of x and m
S_MIN_BITS = 20             # fewer significant bits of s than this count as a coarse grid
S_CROWDED = 1 << 59         # s's integer may not grow past this: its grid gets coarser first
S_REFINE_BITS = 12          # a shrinking s's grid gets this much finer at a time, ...
S_REFINE_BELOW = 24         # ... once s is this many bits below s_precision_bits
S_REFINE_EVERY = 16         # (looked at every this many steps)


@primitive
def _sqrt(s):
    """sqrt, whose derivative at s = 0 is taken as 0 (not inf): there m = 0 too, the step is
    0 whatever s does, and autograd's 0 * inf would turn the unrolled gradient into NaN."""
    return np.sqrt(s)


defvjp(_sqrt, lambda ans, s: lambda g: _half_over(g, ans))


@primitive
def _half_over(g, r):
    """g / (2 r) where r > 0, else 0."""
    return np.divide(0.5 * g, r, out=np.zeros(np.shape(r)), where=r > 0)


defvjp(_half_over, lambda ans, g, r: lambda u: _half_over(u, r),
       lambda ans, g, r: lambda u: -2 * _half_over(u * ans, r))    # d/dr g/(2r) = -ans/r


def direction(m, s, c1, c2, eps):
    """The bias-corrected Adam direction (m / c1) / (sqrt(s / c2) + eps): one formula,
    used by every path, so the exact forward and reverse passes compute it identically."""
    return (m / c1) / (_sqrt(s / c2) + eps)


@dataclass
class Adam:
    """Adam with step sizes ``alphas``, decays ``beta1s`` (mean) and ``beta2s`` (second
    moment), and ``eps``.

    Each schedule is length T, or T x G with ``groups=`` given to ``hypergrad``;
    decays are used as fractions n/d (d = 2**16) and must round below 1.  For
    constant values this is ``torch.optim.Adam(lr=alpha, betas=(beta1, beta2),
    eps=eps)``.  As ``r.d_optimizer`` of a hypergradient the fields hold the
    gradients, shaped like the schedules (``eps`` a number).
    """
    alphas: object
    beta1s: object
    beta2s: object
    eps: float = 1e-8
    s_precision_bits: int = 46    # significant bits kept for s (a storage format, not differentiated)

    def bind(self, n_params, groups=None, denominator_bits=16):
        """The checked schedules for ``n_params`` parameters: an ``AdamPlan``."""
        return AdamPlan(self, n_params, groups, denominator_bits)


class AdamPlan(Plan):
    """Adam's side of the protocol in ``revlearn.optimizer``: state (x, m, s)."""

    names = ("x", "m", "s")

    def __init__(self, opt, n_params, groups, denominator_bits):
        super().__init__({"alphas": opt.alphas, "beta1s": opt.beta1s, "beta2s": opt.beta2s},
                         n_params, groups, denominator_bits, step_sizes=("alphas",),
                         decays=("beta1s", "beta2s"))
        eps = opt.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) \
                or not np.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a positive number (PyTorch's default is 1e-8), got "
                             f"{eps!r}: it keeps the step finite where the second moment is 0")
        self.eps = float(eps)
        bits = opt.s_precision_bits
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 24 <= bits <= 56:
            raise ValueError(f"s_precision_bits must be a whole number in 24..56, got {bits!r}")
        self.s_precision_bits = int(bits)
        for name in ("beta1s", "beta2s"):
            if (self.schedules[name] >= 1).any():
                raise ValueError(f"{name} must lie below 1 for Adam (1 would make its bias "
                                 f"correction 1 - prod(beta) zero), and must round below 1 as "
                                 f"n/{self.d}: at most {1 - 1.5 / (self.d or 2**16):.8f}")
        # running products prod_{i<=t} beta_i and the bias corrections c_t = 1 - product
        self.products = {k: np.cumprod(self.schedules[k], axis=0) for k in ("beta1s", "beta2s")}
        self.corrections = {k: 1 - p for k, p in self.products.items()}

    def formats(self, frac_bits):
        return (frac_bits, frac_bits, frac_bits - S_EXTRA_RANGE_BITS)

    def init_arrays(self, x0, init):
        return {}       # m_0 = s_0 = 0: nothing to differentiate

    # ---- float arithmetic --------------------------------------------------------
    def hyper_arrays(self):
        return (self.schedules["alphas"], self.schedules["beta1s"], self.schedules["beta2s"],
                np.array(self.eps))

    def wrap(self, d_hyper):
        return Adam(alphas=d_hyper[0], beta1s=d_hyper[1], beta2s=d_hyper[2],
                    eps=float(d_hyper[3]), s_precision_bits=self.s_precision_bits)

    def float_init(self, x0, init):
        zeros = anp.zeros_like(x0)    # (plain zeros even when x0 is an autograd box)
        return (x0, zeros, zeros, 1.0, 1.0)   # x, m, s and the running products of the betas

    def coefficients(self, t, hyper=None):
        """(alpha, beta1, 1 - beta1, beta2, 1 - beta2, eps) at iteration t."""
        if hyper is None:
            hyper = self.hyper_arrays()
        a, b1, b2 = (self.groups.per_param(h, t) for h in hyper[:3])
        return a, b1, 1 - b1, b2, 1 - b2, hyper[3]

    def step(self, state, g, coeffs):
        """One float Adam step; the state carries the running products of the betas."""
        x, m, s, p1, p2 = state
        a, b1, omb1, b2, omb2, eps = coeffs
        m = b1 * m + omb1 * g
        s = b2 * s + omb2 * (g * g)
        p1, p2 = p1 * b1, p2 * b2
        return (x - a * direction(m, s, 1 - p1, 1 - p2, eps), m, s, p1, p2)

    def unstep_x(self, state, coeffs):
        """Naive float reversal, first half: x_t = x_{t+1} + a u(m_{t+1}, s_{t+1})."""
        x, m, s, p1, p2 = state
        return (x + coeffs[0] * direction(m, s, 1 - p1, 1 - p2, coeffs[5]), m, s, p1, p2)

    def unstep_rest(self, state, g, coeffs):
        """Naive float reversal, second half: m_t = (m_{t+1} - (1 - b1) g) / b1, likewise s."""
        x, m, s, p1, p2 = state
        _, b1, omb1, b2, omb2, _ = coeffs
        return (x, (m - omb1 * g) / b1, (s - omb2 * (g * g)) / b2, p1 / b1, p2 / b2)

    # ---- exact arithmetic --------------------------------------------------------
    def _coefficients(self, t):
        return (self.at("alphas", t), self.at("beta1s", t), self.at("beta2s", t),
                self.groups.per_param(self.corrections["beta1s"], t),
                self.groups.per_param(self.corrections["beta2s"], t))

    def _refine(self, E, scale, name, t):
        """Finer grids for s (``E``) where its gradient is nonzero for the first time (sized
        so that g**2, the size s grows to as its average fills, keeps s_precision_bits
        bits: the first value (1 - beta2) g**2 then sits log2(1 / (1 - beta2)) bits lower)
        or where s has shrunk (12 bits at a time).  Nothing is lost: the integers are
        shifted left."""
        target = self.s_precision_bits
        moves = []
        unset = self._unset[name]
        if len(unset):
            fresh = unset[scale[unset] != 0]
            if len(fresh):
                bits = np.broadcast_to(E.frac_bits, (len(scale),))[fresh]
                want = np.floor(target - 1 - np.log2(np.abs(scale[fresh]))).astype(np.int64)
                delta = np.clip(want, bits, MAX_ELEMENT_FRAC_BITS) - bits
                moves.append((fresh[delta > 0], delta[delta > 0]))
                self._unset[name] = np.setdiff1d(unset, fresh, assume_unique=True)
        k = E._k
        small = ()
        if t % S_REFINE_EVERY == 0:     # s shrinks slowly: looking every few steps suffices
            small = np.flatnonzero((k != 0) & (np.abs(k) < (1 << (target - S_REFINE_BELOW))))
        if len(small):
            bits = np.broadcast_to(E.frac_bits, (len(scale),))[small]
            ok = bits + S_REFINE_BITS <= MAX_ELEMENT_FRAC_BITS
            moves.append((small[ok], np.full(int(ok.sum()), S_REFINE_BITS)))
        for idx, delta in moves:
            if len(idx):
                E.shift_grid(idx, delta)
                self._log.setdefault((t, name, "refine"), []).append((idx, delta))

    def _coarsen(self, E, inc, name, t):
        """Coarser grids (the dropped bits into the buffer) for the values of s that are
        near the top of their integer's range (|k| + |increment| >= 2**59), so that they
        keep about s_precision_bits bits; called when an add would overflow."""
        for _ in range(8):          # at most 16 bits per move; a huge jump takes several
            room = np.abs(E._k).astype(np.float64) + np.abs(inc) * E._scale
            crowded = np.flatnonzero(room >= S_CROWDED)
            if not len(crowded):
                return
            need = np.ceil(np.log2(room[crowded])).astype(np.int64) - self.s_precision_bits
            delta = -np.clip(need, 1, 16)
            E.shift_grid(crowded, delta)
            self._log.setdefault((t, name, "coarsen"), []).append((crowded, delta))
        raise OverflowError(f"at iteration {t} Adam's {name} grew by more than 2**128 in one "
                            "step: the gradient is not finite or absurdly large")

    def _undo_moves(self, E, name, kind, t):
        for idx, delta in reversed(self._log.pop((t, name, kind), [])):
            E.unshift_grid(idx, delta)

    def exact_step(self, S, g, t):
        X, M, Sq = S
        a, b1, b2, c1, c2 = self._coefficients(t)
        g2 = g * g
        if t == 0:          # per-run bookkeeping of the grids of m and s
            self._unset = {"s": np.arange(len(g))}  # parameters whose gradient was always 0
            self._log = {}           # (step, "s", "refine"/"coarsen") -> grid moves
            self._coarse = [0, 0]    # sampled (s too coarse, s that matters)
        self._refine(Sq, g2, "s", t)
        M.mul(self.numerator("beta1s", t), self.d)
        M.add(g, 1 - b1)
        Sq.mul(self.numerator("beta2s", t), self.d)
        try:
            Sq.add(g2, 1 - b2)
        except OverflowError:       # s is about to outgrow its integer (the add changed
            self._coarsen(Sq, (1 - b2) * g2, "s", t)     # nothing): coarser grids, then add
            Sq.add(g2, 1 - b2)
        s_val = Sq.val
        if t % 8 == 0:
            self._sample_precision(Sq, s_val, c2)
        X.sub(direction(M.val, s_val, c1, c2, self.eps), a)

    def _sample_precision(self, Sq, s_val, c2):
        """Count sampled parameters whose s holds fewer than S_MIN_BITS significant bits
        while sqrt(s / c2) still matters next to eps."""
        step = max(1, len(s_val) // 256)
        k = np.abs(Sq._k[::step])
        c = c2 if np.ndim(c2) == 0 else c2[::step]
        matters = np.sqrt(s_val[::step] / c) > 10 * self.eps
        self._coarse[0] += int(np.sum(matters & (k < 2 ** S_MIN_BITS)))
        self._coarse[1] += int(np.sum(matters))

    def precision_warning(self):
        """A CoarseGridWarning message if s was too coarse in more than 1% of samples."""
        bad, total = getattr(self, "_coarse", (0, 0))
        if total and bad > 0.01 * total:
            return (f"Adam's second moment s kept fewer than {S_MIN_BITS} significant bits in "
                    f"{bad / total:.1%} of the sampled parameters and steps where it matters "
                    "(its gradients shrank far below their first nonzero value), so the exact "
                    "steps differ from float Adam's there (its grid reached the finest, "
                    "2**-120, or the default s_precision_bits was lowered)")
        return None

    def exact_unstep_x(self, S, post, t):
        a, _, _, c1, c2 = self._coefficients(t)
        u = direction(post[0], post[1], c1, c2, self.eps)
        S[0].add(u, a)                        # the same increment as the forward step's
        self._last_direction = (t, u)         # the adjoint of this step needs it too

    def exact_unstep_rest(self, S, g, t):
        _, M, Sq = S
        _, b1, b2, _, _ = self._coefficients(t)
        Sq.sub(g * g, 1 - b2)
        self._undo_moves(Sq, "s", "coarsen", t)
        Sq.div(self.numerator("beta2s", t), self.d)
        M.sub(g, 1 - b1)
        M.div(self.numerator("beta1s", t), self.d)
        self._undo_moves(Sq, "s", "refine", t)

    # ---- adjoint -----------------------------------------------------------------
    def adjoint_init(self, dx):
        z = self.zeros
        return {"x": dx, "m": np.zeros_like(dx), "s": np.zeros_like(dx), "alphas": z(),
                "beta1s": z(), "beta2s": z(), "c1": z(), "c2": z(), "eps": 0.0}

    def adjoint_step(self, t, adj, post, pre, g):
        """Chain rule through x_{t+1} = x_t - a u, u = (m'/c1) / (sqrt(s'/c2) + eps) and the
        two moving averages; returns the cotangent of g_t.  The bias corrections c1_t, c2_t
        collect their gradients here and pass them to the betas in ``gradients``.  Written
        with scratch arrays and dot products: on large nets the passes are the cost."""
        a, b1, b2, c1, c2 = self._coefficients(t)
        (m1, s1), (m0, s0) = post, pre
        red, dot = self.groups.reduce, self.groups.reduce_dot
        w0, w1, w2, w3 = adj.setdefault("_scratch", [np.empty_like(g) for _ in range(4)])
        r = np.sqrt(np.divide(s1, c2, out=w0), out=w0)               # sqrt(s'/c2)
        inv = np.reciprocal(np.add(r, self.eps, out=w1), out=w1)      # 1 / den
        last = getattr(self, "_last_direction", None)
        if last is not None and last[0] == t and last[1].shape == g.shape:
            u = last[1]                            # the reverse pass's own increment
        else:
            u = np.multiply(np.multiply(m1, inv, out=w2), 1 / c1, out=w2)
        dx = adj["x"]
        d_alpha = dot(dx, u)                     # du = -a dx, so d alpha_t = -dx . u
        adj["alphas"][t] = -d_alpha
        dA = np.multiply(np.multiply(dx, -a, out=w3), inv, out=w3)   # du / den
        # d c1: the sum of -dA A / c1, which is a (dx . u) / c1 for one a and one c1
        adj["c1"][t] = a * d_alpha / c1 if np.ndim(a) == 0 and np.ndim(c1) == 0 \
            else red(-dA * m1 / (c1 * c1))
        neg = np.multiply(dA, u, out=w2)         # -(d den) = dA u  (u is used up)
        adj["eps"] -= float(np.sum(neg))
        adj["c2"][t] = dot(neg, r) / (2 * c2) if np.ndim(c2) == 0 else red(neg * r / (2 * c2))
        # d r / d s' = 1 / (2 r c2); at s' = 0 (so m' = 0) the derivative is taken as 0
        ds1 = adj["s"]
        np.subtract(ds1, np.divide(neg, np.multiply(r, 2 * c2, out=w1), out=w1,
                                   where=r > 0), out=ds1, where=r > 0)
        dm1 = adj["m"]
        dm1 += np.multiply(dA, 1 / c1, out=w3)
        adj["beta1s"][t] = dot(dm1, np.subtract(m0, g, out=w0))
        adj["beta2s"][t] = dot(ds1, np.subtract(s0, np.multiply(g, g, out=w0), out=w0))
        dg = dm1 * (1 - b1)
        dg += np.multiply(np.multiply(g, 2 * (1 - b2), out=w0), ds1, out=w0)
        dm1 *= b1
        ds1 *= b2
        return dg

    def gradients(self, adj):
        """Pass each bias correction's gradient to the betas in its product:
        c_t = 1 - prod_{i<=t} beta_i, so d c_t / d beta_i = -prod_t / beta_i for i <= t."""
        d = {}
        for k, c in (("beta1s", "c1"), ("beta2s", "c2")):
            tail = np.cumsum((adj[c] * self.products[k])[::-1], axis=0)[::-1]
            d[k] = adj[k] - tail / self.schedules[k]
        return Adam(alphas=adj["alphas"], beta1s=d["beta1s"], beta2s=d["beta2s"],
                    eps=adj["eps"]), {}
