"""``python -m revlearn``: the whole idea in three numbers.

1. Naive float64 reversal drifts away from the true weights; exact reversal
   recovers them with error 0.
2. The information buffer grows by log2(1/beta) bits per parameter per step.
3. The exact hypergradient agrees with a finite difference.
"""
import numpy as np

from . import digits_splits, hypergrad, logistic_regression, rational_value, reverse_naive, train


def main(T=150):
    data = digits_splits(n_train=300, n_valid=300, seed=0)
    model = logistic_regression(64, 10)

    def train_loss(x, meta, t):
        inputs, targets = data.train.batch(t, 50, seed=0)
        return model.loss(x, inputs, targets)

    def meta_loss(x, meta):
        return model.loss(x, data.valid.inputs, data.valid.targets)

    x0 = model.init(0.1, seed=0)
    print(f"revlearn demo: logistic regression on the 8x8 digits, {model.n_params} weights, "
          f"T = {T} steps of momentum SGD, alpha = 0.5\n")
    print(" beta | naive float64: max|x0 error| | exact: max|x0 error| | bits/param/step | log2(1/beta)")
    for beta in (0.5, 0.7, 0.9):
        alphas, betas = np.full(T, 0.5), np.full(T, beta)
        naive = reverse_naive(train_loss, x0, alphas, betas, precision="float64")
        r = hypergrad(train_loss, meta_loss, x0, alphas, betas)
        exact_err = 0.0 if r.exact else float("nan")
        print(f" {beta:4.2f} | {naive.errors[0]:28.3g} | {exact_err:20.1f} | "
              f"{r.bits_per_param_per_step:15.4f} | {np.log2(1 / beta):.4f}")

    alphas, betas = np.full(T, 0.5), np.full(T, 0.9)
    r = hypergrad(train_loss, meta_loss, x0, alphas, betas)
    eps = 1e-4
    b = rational_value(betas)
    loss_at = lambda a: meta_loss(train(train_loss, x0, a, b).x_final, None)
    fd = (loss_at(alphas + eps) - loss_at(alphas - eps)) / (2 * eps)
    print(f"\nd validation loss / d alpha (all steps at once), beta = 0.9:\n"
          f"  exact hypergradient  {np.sum(r.d_alphas):.8f}\n"
          f"  finite difference    {fd:.8f}")


if __name__ == "__main__":
    main()
