"""Data: the 8x8 digits shipped with revlearn, deterministic minibatches, MNIST.

The digits (1,797 images, UCI / Alpaydin & Kaynak, CC BY 4.0; see
``revlearn/data/README.md``) are small enough to ship and to train on in
seconds.  Minibatches are a pure function of the iteration number, so the
reverse pass sees exactly the batch the forward pass saw.  MNIST is optional:
``load_mnist(directory)`` reads the four IDX files if you have them.
"""
import gzip
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class Dataset:
    """Inputs (n x features, floats in [0, 1]), integer labels and one-hot targets."""
    inputs: np.ndarray
    labels: np.ndarray

    @property
    def targets(self):
        return one_hot(self.labels, 10)

    def __len__(self):
        return len(self.labels)

    def batch(self, t, batch_size, seed=0):
        """Minibatch for iteration t: (inputs, one-hot targets), a pure function of t."""
        idx = batch_indices(len(self), batch_size, t, seed)
        return self.inputs[idx], one_hot(self.labels[idx], 10)


def one_hot(labels, n_classes=10):
    """One-hot rows (n, n_classes) for integer labels in 0..n_classes-1."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        raise ValueError(f"labels must be a 1-D array of integers in 0..{n_classes - 1}, got "
                         f"shape {labels.shape}" + (f", values {labels.min()}..{labels.max()}"
                                                     if labels.size else ""))
    return (labels[:, None] == np.arange(n_classes)).astype(np.float64)


def batch_indices(n_examples, batch_size, t, seed=0):
    """Indices of minibatch t: epochs are seeded permutations, batches consecutive slices.

    Depends only on its arguments (never on global random state), so calling it
    again for the same t -- e.g. in the reverse pass -- gives the same batch.
    """
    if not (1 <= batch_size <= n_examples):
        raise ValueError(f"batch_size must be in 1..{n_examples}, got {batch_size}")
    per_epoch = n_examples // batch_size
    epoch, k = divmod(int(t), per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n_examples)
    return perm[k * batch_size:(k + 1) * batch_size]


def load_digits():
    """All 1,797 digits: ``Dataset`` with 64 features (pixels / 16) and labels 0-9."""
    with resources.files("revlearn").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    return Dataset(images.reshape(len(images), -1).astype(np.float64) / 16.0,
                   labels.astype(np.int64))


@dataclass
class Splits:
    train: Dataset
    valid: Dataset
    test: Dataset


def _count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def split(data, n_train, n_valid, seed=0):
    """Seeded shuffle into train / validation / test (the rest), never overlapping."""
    n_train, n_valid = _count("n_train", n_train, 1), _count("n_valid", n_valid, 0)
    if n_train + n_valid >= len(data):
        raise ValueError(f"n_train + n_valid must leave a test set: {n_train} + {n_valid} >= "
                         f"{len(data)} examples")
    perm = np.random.default_rng(seed).permutation(len(data))
    parts = np.split(perm, [n_train, n_train + n_valid])
    return Splits(*(Dataset(data.inputs[p], data.labels[p]) for p in parts))


def digits_splits(n_train=600, n_valid=600, seed=0):
    """The digits split into train / validation / test (the remaining 597 by default)."""
    return split(load_digits(), n_train, n_valid, seed)


MAX_IDX_BYTES = 1 << 31     # refuse headers that declare more data than MNIST could hold


def read_idx(path):
    """Read one IDX file (optionally gzipped) into a numpy array.

    The header is read first and the declared size checked before any data is
    read (and, for gzip, decompressed), so a damaged or hostile file cannot
    make us allocate more than it claims, nor more than ``MAX_IDX_BYTES``.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
        ndim = head[3]
        raw_dims = f.read(4 * ndim)
        if len(raw_dims) != 4 * ndim:
            raise ValueError(f"{path}: the header is cut short")
        dims = [int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim)]
        size = int(np.prod(dims, dtype=object)) if dims else 0
        if size > MAX_IDX_BYTES:
            raise ValueError(f"{path}: the header declares {dims} = {size} bytes, more than "
                             f"{MAX_IDX_BYTES}; this is not an MNIST file")
        data = f.read(size + 1)
    if len(data) != size:
        raise ValueError(f"{path}: header says {dims} ({size} bytes) but the file holds "
                         f"{'more' if len(data) > size else len(data)} bytes of data")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _check_mnist(part, images, labels):
    if images.ndim != 3:
        raise ValueError(f"MNIST {part} images must be (n, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"MNIST {part} labels must be one label per image (shape (n,)), got "
                         f"shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"MNIST {part}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"MNIST {part} labels must be digits 0-9, found {int(labels.max())}")


def load_mnist(directory):
    """MNIST from the four IDX files in ``directory`` (.gz or not): (train, test) Datasets.

    revlearn cannot download anything for you; if the files are missing the
    error says which ones to fetch.
    """
    found = {}
    for key, name in MNIST_FILES.items():
        for candidate in (name, name + ".gz"):
            p = os.path.join(directory, candidate)
            if os.path.exists(p):
                found[key] = p
                break
    missing = [MNIST_FILES[k] + "[.gz]" for k in MNIST_FILES if k not in found]
    if missing:
        raise FileNotFoundError(
            f"MNIST IDX files not found in {directory!r}: missing {', '.join(missing)}. Download "
            "the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (the MNIST database of "
            "Y. LeCun, C. Cortes and C. Burges) into that directory, or use load_digits().")
    out = []
    for part in ("train", "test"):
        images = read_idx(found[f"{part}_images"])
        labels = read_idx(found[f"{part}_labels"])
        _check_mnist(part, images, labels)
        out.append(Dataset(images.reshape(len(images), -1).astype(np.float64) / 255.0,
                           labels.astype(np.int64)))
    return tuple(out)
