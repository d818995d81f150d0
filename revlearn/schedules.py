"""Hyperparameter schedules: step sizes and momentum decays per iteration (and group).

``alphas`` and ``betas`` are length-T arrays, or T x G arrays together with
``groups``: one group id in 0..G-1 per parameter (e.g. one group for each
layer's weights and one for its biases).  ``Schedule`` checks the shapes and
values once, then hands out per-parameter values for iteration t and sums
per-parameter products back into per-group gradients.
"""
import numpy as np

from .rational import DEFAULT_DENOMINATOR_BITS, check_betas, to_rational


class Schedule:
    """Validated alpha/beta schedules for ``n_params`` parameters.

    With ``denominator_bits`` set, betas are replaced by the fractions n/d that
    exact training uses (``n`` per iteration and group, ``d`` a power of two);
    with ``denominator_bits=None`` the betas are used as given (float training).
    """

    def __init__(self, alphas, betas, n_params, groups=None,
                 denominator_bits=DEFAULT_DENOMINATOR_BITS, allow_negative_alpha=False):
        alphas = np.asarray(alphas, dtype=np.float64)
        betas_in = np.asarray(betas, dtype=np.float64)
        if alphas.shape != betas_in.shape:
            raise ValueError(f"alphas and betas must have the same shape, got {alphas.shape} "
                             f"and {betas_in.shape} (one alpha and one beta per iteration"
                             f"{' and group' if groups is not None else ''})")
        if groups is None:
            if alphas.ndim != 1:
                raise ValueError(f"without groups, alphas and betas must be 1-D (length T), got "
                                 f"shape {alphas.shape}; pass groups= for T x G schedules")
            self.groups = None
            self.n_groups = None
        else:
            groups = np.asarray(groups)
            if groups.shape != (n_params,) or not np.issubdtype(groups.dtype, np.integer):
                raise ValueError(f"groups must be an integer array of shape ({n_params},), one "
                                 f"group id per parameter; got {groups.dtype} {groups.shape}")
            if alphas.ndim != 2:
                raise ValueError(f"with groups, alphas and betas must be T x G, got {alphas.shape}")
            G = alphas.shape[1]
            if groups.min() < 0 or groups.max() >= G:
                raise ValueError(f"group ids must lie in 0..{G - 1} (the schedules have G = {G} "
                                 f"columns), got ids {groups.min()}..{groups.max()}")
            self.groups = groups.astype(np.intp)
            self.n_groups = G
        if len(alphas) == 0:
            raise ValueError("schedules are empty: need at least one iteration")
        if not np.isfinite(alphas).all():
            raise ValueError("alphas contain NaN or inf")
        if not allow_negative_alpha and (alphas < 0).any():
            raise ValueError(f"step sizes must be >= 0, got {alphas.min()!r}; optimize log(alpha) "
                             "if you need an unconstrained parameter")
        check_betas(betas_in)
        self.alphas = alphas
        self.T = len(alphas)
        self.n_params = n_params
        self.denominator_bits = denominator_bits
        if denominator_bits is None:
            self.betas = betas_in
            self.n = self.d = None
        else:
            self.n, self.d = to_rational(betas_in, denominator_bits)
            self.betas = self.n / self.d

    def per_param(self, values, t):
        """Row t of a schedule, as a scalar or one value per parameter."""
        row = values[t]
        return row if self.groups is None else row[self.groups]

    def alpha(self, t):
        return self.per_param(self.alphas, t)

    def beta(self, t):
        return self.per_param(self.betas, t)

    def numerator(self, t):
        return self.per_param(self.n, t)

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
