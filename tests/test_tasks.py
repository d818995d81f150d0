"""Tests for revlearn.tasks: rotated digit tasks and the multi-task net with mixing matrices."""
import autograd.numpy as np
import numpy as onp
import pytest

import revlearn as rl
from revlearn.tasks import (MultiTaskNet, make_rotated_tasks, mixing_matrices, rotate_images,
                            sharing_correlation, tied_lowest_layer)


def test_rotation_moves_each_pixel_counter_clockwise():
    # Independent oracle: a quarter turn counter-clockwise sends pixel (i, j) to (7 - j, i).
    img = onp.arange(64.0).reshape(1, 64)
    out = rotate_images(img, 1).reshape(8, 8)
    src = img.reshape(8, 8)
    for i in range(8):
        for j in range(8):
            assert out[7 - j, i] == src[i, j]
    # the top-right corner goes to the top-left corner
    assert out[0, 0] == src[0, 7]


def test_four_quarter_turns_are_the_identity_and_two_are_a_flip():
    x = onp.random.default_rng(0).random((5, 64))
    onp.testing.assert_array_equal(rotate_images(x, 4), x)
    onp.testing.assert_array_equal(rotate_images(rotate_images(x, 1), 3), x)
    flipped = x.reshape(5, 8, 8)[:, ::-1, ::-1].reshape(5, 64)
    onp.testing.assert_array_equal(rotate_images(x, 2), flipped)


def test_rotate_images_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="flattened 8x8"):
        rotate_images(onp.zeros((3, 63)))


def test_tasks_have_the_requested_shapes_and_balanced_labels():
    tasks = make_rotated_tasks(((0, 1, 2), (3, 4, 5)), (0, 1), n_train=4, n_valid=6, seed=0)
    assert [t.name for t in tasks] == ["012", "012 rot90", "345", "345 rot90"]
    for t in tasks:
        assert t.n_classes == 3
        assert t.train.inputs.shape == (12, 64) and t.valid.inputs.shape == (18, 64)
        assert onp.array_equal(onp.bincount(t.train.labels, minlength=3), [4, 4, 4])
        assert onp.array_equal(onp.bincount(t.valid.labels, minlength=3), [6, 6, 6])
        assert len(t.test) > 100
        X, Y = t.data("train")
        assert Y.shape == (12, 3) and onp.array_equal(Y.argmax(1), t.train.labels)


def _source_rows(images, quarter_turns, digits):
    """Row of load_digits() that each (rotated) task image came from (the 1,797 are distinct)."""
    back = rotate_images(images, -quarter_turns)
    rows = []
    for im in back:
        hit = onp.flatnonzero((digits.inputs == im).all(axis=1))
        assert len(hit) == 1, "a task image is not a rotated digit image"
        rows.append(int(hit[0]))
    return rows


def test_task_images_are_rotated_digits_of_the_right_class_and_twins_do_not_overlap():
    digits = rl.load_digits()
    tasks = make_rotated_tasks(((0, 1, 2),), (0, 1), n_train=3, n_valid=4, seed=1)
    used = []
    for t in tasks:
        rows = []
        for part in ("train", "valid", "test"):
            d = getattr(t, part)
            src = _source_rows(d.inputs, t.quarter_turns, digits)
            onp.testing.assert_array_equal(digits.labels[src], onp.array(t.classes)[d.labels])
            rows += src
        assert len(set(rows)) == len(rows)  # no image twice within a task
        used.append(set(rows))
    # the upright task and its rotated twin share no image, and together use all of them
    assert not used[0] & used[1]
    assert len(used[0] | used[1]) == sum(onp.sum(digits.labels == c) for c in (0, 1, 2))
    assert tasks[1].quarter_turns == 1 and tasks[0].quarter_turns == 0


def test_tasks_are_deterministic_and_depend_on_the_seed():
    a = make_rotated_tasks(n_train=2, n_valid=3, seed=0)
    b = make_rotated_tasks(n_train=2, n_valid=3, seed=0)
    c = make_rotated_tasks(n_train=2, n_valid=3, seed=1)
    for ta, tb in zip(a, b):
        onp.testing.assert_array_equal(ta.train.inputs, tb.train.inputs)
        onp.testing.assert_array_equal(ta.test.labels, tb.test.labels)
    assert not onp.array_equal(a[0].train.inputs, c[0].train.inputs)


@pytest.mark.parametrize("groups, message", [
    (((0, 1), (2, 3, 4)), "same size"),
    (((0, 1), (1, 2)), "distinct"),
    (((0,),), "at least 2"),
    (((0, 10),), "distinct digits"),
])
def test_bad_class_groups_get_clear_errors(groups, message):
    with pytest.raises(ValueError, match=message):
        make_rotated_tasks(groups)


def test_too_many_examples_per_class_is_an_error():
    with pytest.raises(ValueError, match="leave test images"):
        make_rotated_tasks(n_train=50, n_valid=50)


def test_mixing_matrices_interpolate_between_separate_and_tied():
    onp.testing.assert_array_equal(mixing_matrices(3, 2, 0.0), onp.stack([onp.eye(3)] * 2))
    onp.testing.assert_allclose(mixing_matrices(3, 2, 1.0), onp.full((2, 3, 3), 1 / 3))
    M = mixing_matrices(4, 2, [0.0, 0.5])
    onp.testing.assert_allclose(M[1], 0.5 * onp.eye(4) + 0.125)


@pytest.fixture(scope="module")
def tiny():
    tasks = make_rotated_tasks(((0, 1), (2, 3)), (0, 1), n_train=2, n_valid=3, seed=0)
    return tasks, MultiTaskNet([64, 3, 2], tasks)


def test_batched_losses_match_one_mlp_per_task(tiny):
    tasks, net = tiny
    rng = onp.random.default_rng(0)
    z = rng.standard_normal(net.n_params)
    mixing = rng.standard_normal((2, 4, 4))
    W = net.task_weights(z, mixing)
    # oracle: build each task's weights by hand and use the plain single-task MLP
    Z = z.reshape(4, -1)
    for i, t in enumerate(tasks):
        w = onp.concatenate([mixing[l][i] @ Z[:, sl] for l, sl in enumerate(net.layer_slices)])
        onp.testing.assert_allclose(W[i], w, rtol=1e-12)
        for part in ("train", "valid", "test"):
            onp.testing.assert_allclose(net.task_losses(z, mixing, part)[i],
                                        net.net.loss(w, *t.data(part)), rtol=1e-12)


def test_identity_mixing_is_separate_nets_and_full_mixing_ties_them(tiny):
    tasks, net = tiny
    z = net.init(0.3, seed=2)
    onp.testing.assert_array_equal(net.task_weights(z, mixing_matrices(4, 2, 0.0)),
                                   z.reshape(4, -1))
    W = net.task_weights(z, mixing_matrices(4, 2, 1.0))
    onp.testing.assert_allclose(W, onp.broadcast_to(z.reshape(4, -1).mean(0), W.shape),
                                atol=1e-15)


def test_net_checks_shapes(tiny):
    tasks, net = tiny
    with pytest.raises(ValueError, match="mixing must have shape"):
        net.task_weights(onp.zeros(net.n_params), onp.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="latent weights"):
        net.task_weights(onp.zeros(5), mixing_matrices(4, 2, 0.5))
    with pytest.raises(ValueError, match="classes"):
        MultiTaskNet([64, 3, 5], tasks)


def test_hypergradient_through_mixing_matrices_matches_finite_differences(tiny):
    tasks, net = tiny
    T = 8
    alphas, betas = onp.full(T, 1.0), onp.full(T, 0.9)
    z0 = net.init(0.1, seed=0)

    def train_loss(z, mixing, t):
        return net.n_tasks * net.loss(z, mixing, "train") + 0.01 * np.sum(z ** 2)

    def meta_loss(z, mixing):
        return net.loss(z, mixing, "valid")

    def f(mixing):  # the meta-loss after plain float training, same rational betas
        x = rl.train(train_loss, z0, alphas, betas, mixing, denominator_bits=16).x_final
        return meta_loss(x, mixing)

    mixing = mixing_matrices(4, 2, 0.5) + 0.1 * onp.random.default_rng(3).standard_normal((2, 4, 4))
    result = rl.hypergrad(train_loss, meta_loss, z0, alphas, betas, mixing)
    assert result.exact and result.d_meta.shape == (2, 4, 4)
    eps = 1e-5
    fd = onp.zeros_like(mixing)
    for idx in onp.ndindex(*mixing.shape):
        e = onp.zeros_like(mixing)
        e[idx] = eps
        fd[idx] = (f(mixing + e) - f(mixing - e)) / (2 * eps)
    assert onp.abs(fd).max() > 1e-3  # the check is not trivially passing on zeros
    onp.testing.assert_allclose(result.d_meta, fd, rtol=1e-5, atol=1e-8)


def test_tied_lowest_layer_trains_exactly_like_one_shared_first_layer():
    """Oracle: a net with ONE first layer u shared by all tasks and separate upper layers,
    trained on the sum of the task losses with the same momentum SGD, from
    u0 = sum_j z0_j / sqrt(n): its u must be every task's first layer at every step."""
    tasks = make_rotated_tasks(((0, 1), (2, 3)), (0, 1), n_train=2, n_valid=3, seed=1)
    net = MultiTaskNet([64, 4, 3, 2], tasks)
    n, P = net.n_tasks, net.net.n_params
    mixing = tied_lowest_layer(n, net.n_layers)
    assert onp.array_equal(mixing[1], onp.eye(n)) and onp.allclose(mixing[0], 1 / onp.sqrt(n))
    T, alphas, betas = 6, onp.full(6, 0.5), onp.full(6, 0.9)
    z0 = net.init(0.3, seed=4)

    def tied_loss(z, m, t):
        return net.n_tasks * net.loss(z, m, "train")

    first = net.layer_slices[0]
    k = first.stop - first.start
    Z0 = z0.reshape(n, P)
    shared0 = onp.concatenate([Z0[:, first].sum(0) / onp.sqrt(n), Z0[:, first.stop:].ravel()])

    def shared_loss(y, m, t):
        u, upper = y[:k], np.reshape(y[k:], (n, P - k))
        return sum(net.net.loss(np.concatenate([u, upper[i]]), *task.data("train"))
                   for i, task in enumerate(tasks))

    z_T = rl.train(tied_loss, z0, alphas, betas, mixing).x_final
    y_T = rl.train(shared_loss, shared0, alphas, betas).x_final
    W = net.task_weights(z_T, mixing)
    for i in range(n):
        onp.testing.assert_allclose(W[i, first], y_T[:k], rtol=1e-10, atol=1e-12)
        onp.testing.assert_allclose(W[i, first.stop:], y_T[k:].reshape(n, P - k)[i],
                                    rtol=1e-10, atol=1e-12)
    assert onp.abs(W[0, first] - shared0[:k]).max() > 1e-2      # training moved it
    with pytest.raises(ValueError, match="at least 2 layers"):
        tied_lowest_layer(4, 1)


def test_sharing_correlation_matches_sampled_weights():
    rng = onp.random.default_rng(0)
    T = onp.eye(4) + 0.6 * rng.standard_normal((4, 4))
    R = sharing_correlation(T)
    # oracle: draw independent standard-normal latent weights, mix them, correlate
    z = rng.standard_normal((4, 200_000))
    onp.testing.assert_allclose(R, onp.corrcoef(T @ z), atol=0.01)
    onp.testing.assert_allclose(onp.diag(R), 1.0)
    onp.testing.assert_allclose(sharing_correlation(onp.eye(3)), onp.eye(3))
    stack = sharing_correlation(tied_lowest_layer(3, 2))
    onp.testing.assert_allclose(stack[0], onp.ones((3, 3)))
    onp.testing.assert_allclose(stack[1], onp.eye(3))
    with pytest.raises(ValueError, match="square"):
        sharing_correlation(onp.ones((2, 3)))
    with pytest.raises(ValueError, match="all zeros"):
        sharing_correlation(onp.zeros((2, 2)))
