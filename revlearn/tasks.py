"""Related tasks from the digits, and a multi-task net that learns which weights to share.

The paper's weight-sharing experiment trains one network per task (Omniglot
alphabets and their 90-degree rotations) and lets the tasks share weights
through hyperparameters.  Our stand-in: each *task* classifies a small group of
digit classes, e.g. {0, 1, 2}, either upright or rotated by 90 degrees, with
only a few training images per class, so that borrowing strength from the
other tasks matters.

``MultiTaskNet`` holds one latent weight vector z_j per task and builds task
i's weights layer by layer as

    w_i[layer l] = sum_j T_l[i, j] z_j[layer l]

with one task-mixing matrix T_l per layer.  T_l = identity gives separate
networks, equal entries tie the tasks' weights in that layer (the paper's tied
baseline shares only the lowest layer: ``tied_lowest_layer``), and anything in
between is partial sharing; ``sharing_correlation`` says how much.  Training moves z (the parameters); the mixing
matrices are hyperparameters, learned with the exact hypergradient.
"""
from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .datasets import Dataset, load_digits, one_hot
from .models import MLP

IMAGE_SHAPE = (8, 8)


def rotate_images(inputs, quarter_turns=1):
    """Rotate flattened 8x8 images counter-clockwise by 90 degrees ``quarter_turns`` times.

    ``inputs`` is (n, 64) as in ``load_digits``; the result has the same shape.
    Rotating four times gives back the original images.
    """
    inputs = onp.asarray(inputs)
    size = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if inputs.ndim != 2 or inputs.shape[1] != size:
        raise ValueError(f"inputs must be (n, {size}) flattened 8x8 images, got {inputs.shape}")
    images = inputs.reshape(-1, *IMAGE_SHAPE)
    return onp.rot90(images, k=int(quarter_turns), axes=(1, 2)).reshape(len(inputs), size)


@dataclass
class Task:
    """One classification task: the digit ``classes`` shown rotated by ``quarter_turns``.

    Labels inside the task run 0..k-1 (label j means digit ``classes[j]``);
    ``train``, ``valid`` and ``test`` hold the (rotated) images.  Use
    ``data(part)`` for one-hot targets with k columns (``Dataset.targets``
    always has 10).
    """
    name: str
    classes: tuple
    quarter_turns: int
    train: Dataset
    valid: Dataset
    test: Dataset

    @property
    def n_classes(self):
        return len(self.classes)

    def data(self, part):
        """(inputs, one-hot targets with k columns) of ``part``: 'train', 'valid' or 'test'."""
        if part not in ("train", "valid", "test"):
            raise ValueError(f"part must be 'train', 'valid' or 'test', got {part!r}")
        d = getattr(self, part)
        return d.inputs, one_hot(d.labels, self.n_classes)


def _check_groups(class_groups):
    groups = [tuple(int(c) for c in g) for g in class_groups]
    flat = [c for g in groups for c in g]
    if not groups or any(len(g) < 2 for g in groups):
        raise ValueError(f"class_groups needs at least one group of at least 2 classes, "
                         f"got {class_groups!r}")
    if len(set(len(g) for g in groups)) != 1:
        raise ValueError(f"every class group must have the same size (the tasks share one "
                         f"output layer), got sizes {[len(g) for g in groups]}")
    if len(set(flat)) != len(flat) or not all(0 <= c <= 9 for c in flat):
        raise ValueError(f"class groups must hold distinct digits 0-9, got {class_groups!r}")
    return groups


def make_rotated_tasks(class_groups=((0, 1, 2), (3, 4, 5), (6, 7, 8)), quarter_turns=(0, 1),
                       n_train=5, n_valid=20, seed=0):
    """Tasks "class group x rotation", with ``n_train``/``n_valid`` images per class each.

    Every (group, rotation) pair is one task: 3 groups x 2 rotations = 6 tasks
    by default.  The images of each digit are shuffled (seeded) and dealt out to
    the rotations without overlap, so an upright task and its rotated twin never
    see the same picture; within a task the first ``n_train`` images per class
    train, the next ``n_valid`` validate and the rest (about 60 per class) test.
    Deterministic: the same arguments always give the same tasks.
    """
    groups = _check_groups(class_groups)
    turns = [int(q) for q in quarter_turns]
    if not turns or len(set(q % 4 for q in turns)) != len(turns):
        raise ValueError(f"quarter_turns must be distinct rotations, got {quarter_turns!r}")
    digits = load_digits()
    smallest = min(onp.sum(digits.labels == c) for g in groups for c in g) // len(turns)
    if n_train < 1 or n_valid < 1 or n_train + n_valid >= smallest:
        raise ValueError(f"n_train={n_train} and n_valid={n_valid} per class must be >= 1 and "
                         f"leave test images: each task gets only {smallest} images of its "
                         "rarest class")
    # chunks[c][r]: the indices of digit c given to rotation number r
    chunks = {}
    for g in groups:
        for c in g:
            idx = onp.flatnonzero(digits.labels == c)
            idx = onp.random.default_rng([seed, c]).permutation(idx)
            chunks[c] = onp.array_split(idx, len(turns))
    tasks = []
    for g in groups:
        for r, q in enumerate(turns):
            sets = _split_task(digits, [chunks[c][r] for c in g], q, n_train, n_valid)
            name = "".join(str(c) for c in g) + ("" if q % 4 == 0 else f" rot{90 * (q % 4)}")
            tasks.append(Task(name, g, q, *sets))
    return tasks


def _split_task(digits, per_class, quarter_turns, n_train, n_valid):
    """(train, valid, test) Datasets of one task from the shuffled indices of each class."""
    cuts = (slice(0, n_train), slice(n_train, n_train + n_valid), slice(n_train + n_valid, None))
    sets = []
    for cut in cuts:
        idx = onp.concatenate([ix[cut] for ix in per_class])
        labels = onp.concatenate([onp.full(len(ix[cut]), k) for k, ix in enumerate(per_class)])
        images = rotate_images(digits.inputs[idx], quarter_turns)
        sets.append(Dataset(images, labels.astype(onp.int64)))
    return sets


def mixing_matrices(n_tasks, n_layers, sharing):
    """Mixing matrices (n_layers, n_tasks, n_tasks) = (1 - sharing) I + sharing * ones / n_tasks.

    ``sharing = 0``: separate networks; ``sharing = 1``: one fully tied
    network (every task's weights are the mean of the z_j); the paper started
    its learned sharing from 0.5.  ``sharing`` may also be one value per layer.
    """
    s = onp.broadcast_to(onp.asarray(sharing, dtype=float), (n_layers,))
    eye, full = onp.eye(n_tasks), onp.full((n_tasks, n_tasks), 1.0 / n_tasks)
    return onp.stack([(1 - si) * eye + si * full for si in s])


def tied_lowest_layer(n_tasks, n_layers, value=None):
    """The paper's *tied* baseline: one shared lowest layer, separate layers above it.

    Mixing matrices (n_layers, n_tasks, n_tasks): identity in every layer except the
    first, whose entries are all equal, so every task gets the same first-layer
    weights (the usual multi-task design).  The paper calls them "all ones"; the
    default value 1/sqrt(n_tasks) makes the shared layer train exactly like a single
    layer trained on all tasks' losses with the same step size and starting from
    the same initial scale: its weights w = sum_j z_j / sqrt(n) start with the
    variance of one z_j, every z_j gets the gradient g / sqrt(n), and so w moves by
    n / sqrt(n)**2 = 1 times the step a single shared layer would take.  With
    value = 1 the shared layer starts sqrt(n) times larger and takes n times larger
    steps; with 1/n, n times smaller steps.
    """
    if n_layers < 2:
        raise ValueError(f"a tied lowest layer needs at least 2 layers (one to share, one to "
                         f"keep separate), got n_layers={n_layers}")
    value = 1 / onp.sqrt(n_tasks) if value is None else float(value)
    mixing = mixing_matrices(n_tasks, n_layers, 0.0)
    mixing[0] = value
    return mixing


def sharing_correlation(mixing):
    """The correlation between tasks' weights that mixing matrices imply, layer by layer.

    With independent latent weights of equal variance, task i's and task j's weights in
    layer l have covariance C = T_l T_l^T, so their correlation is C_ij / sqrt(C_ii C_jj):
    1 means the two tasks use the same weights, 0 that they share nothing.  This is
    how the paper normalized its learned matrices for display.  ``mixing`` is
    (n_tasks, n_tasks) or (n_layers, n_tasks, n_tasks); the result has its shape.
    """
    m = onp.asarray(mixing, dtype=float)
    if m.ndim not in (2, 3) or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"mixing must be square matrices (n_tasks, n_tasks) or a stack of them "
                         f"(n_layers, n_tasks, n_tasks), got shape {m.shape}")
    C = m @ onp.swapaxes(m, -1, -2)
    d = onp.sqrt(onp.diagonal(C, axis1=-2, axis2=-1))
    if (d == 0).any():
        raise ValueError("a row of a mixing matrix is all zeros: that task has no weights, so its "
                         "correlation with the others is undefined")
    return C / (d[..., :, None] * d[..., None, :])


class MultiTaskNet:
    """One ``MLP(layer_sizes)`` per task, with weights mixed from latent vectors z.

    The trained parameter vector is z, one latent weight vector per task
    (length ``n_tasks * net.n_params``).  ``mixing`` is an array
    (n_layers, n_tasks, n_tasks): ``task_weights(z, mixing)[i]`` are task i's
    weights, layer l being ``mixing[l] @ z[:, layer l]``.  Losses are
    autograd.numpy, so the mixing matrices can be hyperparameters.  The
    ``tasks`` are stored with the net: their training and validation sets have
    equal sizes, so all tasks are evaluated at once with batched matrix
    products (a Python loop over tasks would be several times slower).
    """

    def __init__(self, layer_sizes, tasks):
        self.net = MLP(layer_sizes)
        self.tasks = list(tasks)
        self.n_tasks = len(self.tasks)
        if self.n_tasks < 1:
            raise ValueError("need at least one task")
        sizes = self.net.layer_sizes
        for t in self.tasks:
            if t.n_classes != sizes[-1] or t.train.inputs.shape[1] != sizes[0]:
                raise ValueError(f"task {t.name!r} has {t.train.inputs.shape[1]} inputs and "
                                 f"{t.n_classes} classes, but layer_sizes is {sizes}")
        self.n_layers = len(sizes) - 1
        self.n_params = self.n_tasks * self.net.n_params
        # MLP parameters are laid out layer by layer (W1, b1, W2, b2, ...), so each
        # layer's weights and biases are one contiguous slice of a task's vector.
        layer = self.net.groups // 2
        self.layer_slices = [slice(int(onp.flatnonzero(layer == l)[0]),
                                   int(onp.flatnonzero(layer == l)[-1]) + 1)
                             for l in range(self.n_layers)]
        self._stacked = {}
        for part in ("train", "valid", "test"):
            data = [t.data(part) for t in self.tasks]
            if len(set(len(x) for x, _ in data)) == 1:
                self._stacked[part] = (onp.stack([x for x, _ in data]),
                                       onp.stack([y for _, y in data]))

    def check_mixing(self, mixing):
        shape = (self.n_layers, self.n_tasks, self.n_tasks)
        if onp.shape(mixing) != shape:
            raise ValueError(f"mixing must have shape {shape} (one n_tasks x n_tasks matrix "
                             f"per layer), got {onp.shape(mixing)}")

    def task_weights(self, z, mixing):
        """Task weight vectors, shape (n_tasks, net.n_params): layer l = mixing[l] @ z_l."""
        self.check_mixing(mixing)
        if onp.shape(z) != (self.n_params,):
            raise ValueError(f"z must be a flat vector of {self.n_params} latent weights "
                             f"({self.n_tasks} tasks x {self.net.n_params}), got {onp.shape(z)}")
        Z = np.reshape(z, (self.n_tasks, self.net.n_params))
        return np.concatenate([np.dot(mixing[l], Z[:, sl])
                               for l, sl in enumerate(self.layer_slices)], axis=1)

    def _predict_all(self, W, inputs):
        # inputs (n_tasks, n, features) -> log-probabilities (n_tasks, n, classes)
        h = inputs
        sizes = self.net.layer_sizes
        for l, sl in enumerate(self.layer_slices):
            m, n = sizes[l], sizes[l + 1]
            Wl = np.reshape(W[:, sl.start:sl.start + m * n], (self.n_tasks, m, n))
            bl = W[:, sl.start + m * n:sl.stop]
            h = np.matmul(h, Wl) + bl[:, None, :]
            if l < self.n_layers - 1:
                h = np.tanh(h)
        h = h - onp.max(getval(h), axis=2, keepdims=True)
        return h - np.log(np.sum(np.exp(h), axis=2, keepdims=True))

    def task_losses(self, z, mixing, part):
        """Each task's mean per-example NLL on ``part`` ('train', 'valid' or 'test')."""
        W = self.task_weights(z, mixing)
        if part in self._stacked:
            X, Y = self._stacked[part]
            return -np.sum(self._predict_all(W, X) * Y, axis=(1, 2)) / X.shape[1]
        return np.array([self.net.loss(W[i], *t.data(part)) for i, t in enumerate(self.tasks)])

    def loss(self, z, mixing, part):
        """Mean over tasks of each task's mean per-example NLL on ``part``."""
        return np.mean(self.task_losses(z, mixing, part))

    def task_accuracies(self, z, mixing, part):
        """Each task's accuracy on ``part``."""
        W = onp.asarray(self.task_weights(z, mixing))
        return onp.array([self.net.accuracy(W[i], getattr(t, part).inputs, getattr(t, part).labels)
                          for i, t in enumerate(self.tasks)])

    def init(self, scale, seed=0):
        """Initial latent weights z0 = scale * fixed standard-normal noise (seeded)."""
        return scale * onp.random.default_rng(seed).standard_normal(self.n_params)
