"""Hyperparameter schedules: one value per iteration (and parameter group).

A schedule is a length-T array, or a T x G array together with ``groups``: one
group id in 0..G-1 per parameter (e.g. one group for each layer's weights and
one for its biases).  ``check_schedules`` validates a set of named schedules
once (same shape, finite, in range) and returns a ``Groups``, which hands out
per-parameter values for iteration t and sums per-parameter products back into
per-group gradients.  ``Schedule`` is the momentum pair (alphas, betas) in that
form, used by the float-only experiments.
"""
import numpy as np

from .rational import DEFAULT_DENOMINATOR_BITS, check_betas, to_rational


class Groups:
    """How schedule columns map to parameters: all of them (``groups=None``) or by group id."""

    def __init__(self, n_params, groups=None, n_groups=None):
        self.n_params = n_params
        self.groups = groups
        self.n_groups = n_groups

    def per_param(self, values, t):
        """Row t of a schedule, as a scalar or one value per parameter."""
        row = values[t]
        return row if self.groups is None else row[self.groups]

    def reduce(self, products):
        """Sum per-parameter products into a scalar, or one value per group."""
        if self.groups is None:
            return np.sum(products)
        return np.bincount(self.groups, weights=products, minlength=self.n_groups)

    def reduce_dot(self, a, b):
        """``reduce(a * b)``: a dot product, or one per group."""
        if self.groups is None:
            return np.dot(a, b)   # no temporary array
        return self.reduce(a * b)


def real_array(name, values):
    """``values`` as a float64 array, or a TypeError naming ``name`` (complex numbers,
    strings and objects are refused, not silently cast)."""
    a = np.asarray(values)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got an array of dtype {a.dtype}: "
                        f"{values!r:.80}")
    return a.astype(np.float64)


def check_schedules(named, n_params, groups=None, *, step_sizes=(), decays=(),
                    allow_negative_alpha=False):
    """Validate named schedules; return ``(arrays, Groups)``.

    ``named`` maps names (e.g. "alphas", "betas") to arrays that must all have
    the same shape: (T,) without ``groups``, (T, G) with them.  Names listed in
    ``step_sizes`` must be >= 0 (unless ``allow_negative_alpha``); names in
    ``decays`` must lie in (0, 1].  Errors name the argument, the value and the fix.
    """
    arrays = {name: real_array(name, v) for name, v in named.items()}
    names = list(arrays)
    first = names[0]
    for name in names[1:]:
        if arrays[name].shape != arrays[first].shape:
            shapes = ", ".join(f"{n} {arrays[n].shape}" for n in names)
            raise ValueError(f"{' and '.join(names)} must have the same shape, got {shapes} (one "
                             f"value per iteration{' and group' if groups is not None else ''})")
    shape = arrays[first].shape
    if groups is None:
        if len(shape) != 1:
            raise ValueError(f"without groups, {' and '.join(names)} must be 1-D (length T), got "
                             f"shape {shape}; pass groups= for T x G schedules")
        spec = Groups(n_params)
    else:
        g = np.asarray(groups)
        if g.shape != (n_params,) or not np.issubdtype(g.dtype, np.integer):
            raise ValueError(f"groups must be an integer array of shape ({n_params},), one "
                             f"group id per parameter; got {g.dtype} {g.shape}")
        if len(shape) != 2:
            raise ValueError(f"with groups, {' and '.join(names)} must be T x G, got {shape}")
        G = shape[1]
        if n_params and (g.min() < 0 or g.max() >= G):
            raise ValueError(f"group ids must lie in 0..{G - 1} (the schedules have G = {G} "
                             f"columns), got ids {g.min()}..{g.max()}")
        spec = Groups(n_params, g.astype(np.intp), G)
    if shape[0] == 0:
        raise ValueError("schedules are empty: need at least one iteration")
    for name in decays:
        check_betas(arrays[name], name)
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contain NaN or inf")
    for name in step_sizes:
        if not allow_negative_alpha and (arrays[name] < 0).any():
            raise ValueError(f"step sizes must be >= 0, got {name} = {arrays[name].min()!r}; "
                             "optimize log(alpha) if you need an unconstrained parameter")
    return arrays, spec


class Schedule(Groups):
    """Validated momentum schedules (alphas, betas) for ``n_params`` parameters.

    With ``denominator_bits`` set, betas are replaced by the fractions n/d that
    exact training uses (``n`` per iteration and group, ``d`` a power of two);
    with ``denominator_bits=None`` the betas are used as given (float training).
    """

    def __init__(self, alphas, betas, n_params, groups=None,
                 denominator_bits=DEFAULT_DENOMINATOR_BITS, allow_negative_alpha=False):
        arrays, spec = check_schedules({"alphas": alphas, "betas": betas}, n_params, groups,
                                       step_sizes=("alphas",), decays=("betas",),
                                       allow_negative_alpha=allow_negative_alpha)
        super().__init__(n_params, spec.groups, spec.n_groups)
        self.alphas = arrays["alphas"]
        self.T = len(self.alphas)
        self.denominator_bits = denominator_bits
        if denominator_bits is None:
            self.betas = arrays["betas"]
            self.n = self.d = None
        else:
            self.n, self.d = to_rational(arrays["betas"], denominator_bits)
            self.betas = self.n / self.d

    def alpha(self, t):
        return self.per_param(self.alphas, t)

    def beta(self, t):
        return self.per_param(self.betas, t)

    def numerator(self, t):
        return self.per_param(self.n, t)
