"""The shipped digits, deterministic minibatches and the optional MNIST loader."""
import gzip
import struct

import numpy as np
import pytest

from revlearn import batch_indices, digits_splits, load_digits, load_mnist
from revlearn.datasets import read_idx


def test_digits_are_complete_and_scaled():
    d = load_digits()
    assert d.inputs.shape == (1797, 64) and len(d) == 1797
    assert d.inputs.min() == 0.0 and d.inputs.max() == 1.0
    assert set(np.unique(d.labels)) == set(range(10))
    np.testing.assert_array_equal(d.targets.argmax(1), d.labels)


def test_digits_file_loads_without_pickle_and_has_its_attribution():
    from importlib import resources
    root = resources.files("revlearn").joinpath("data")
    with root.joinpath("digits.npz").open("rb") as f:
        z = np.load(f, allow_pickle=False)
        assert z["images"].shape == (1797, 8, 8)
    readme = root.joinpath("README.md").read_text()
    assert "CC BY 4.0" in readme and "Alpaydin" in readme


def test_splits_are_seeded_and_disjoint():
    a, b, c = digits_splits(seed=1), digits_splits(seed=1), digits_splits(seed=2)
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    assert not np.array_equal(a.train.inputs, c.train.inputs)
    assert len(a.train) + len(a.valid) + len(a.test) == 1797
    rows = {r.tobytes() for r in a.train.inputs}
    assert sum(r.tobytes() in rows for r in a.test.inputs) <= 5  # only true duplicate images


def test_minibatches_are_a_pure_function_of_the_iteration():
    first = [batch_indices(100, 30, t, seed=4) for t in range(6)]
    again = [batch_indices(100, 30, t, seed=4) for t in reversed(range(6))][::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    epoch0 = np.concatenate(first[:3])
    assert len(set(epoch0)) == 90  # no repeats within an epoch
    assert not np.array_equal(first[0], first[3])  # a new permutation each epoch
    np.random.seed(123)  # global random state must not matter
    np.testing.assert_array_equal(batch_indices(100, 30, 2, seed=4), first[2])


def _write_idx(path, array, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loader_reads_tiny_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    suffix = ".gz" if gz else ""
    for stem, arr in [("train-images-idx3-ubyte", imgs), ("train-labels-idx1-ubyte", labels),
                      ("t10k-images-idx3-ubyte", imgs[:3]), ("t10k-labels-idx1-ubyte", labels[:3])]:
        _write_idx(tmp_path / (stem + suffix), arr, gz)
    train, test = load_mnist(tmp_path)
    assert train.inputs.shape == (7, 784) and test.inputs.shape == (3, 784)
    np.testing.assert_allclose(train.inputs[2], imgs[2].ravel() / 255.0)
    np.testing.assert_array_equal(test.labels, labels[:3])


def test_missing_mnist_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_corrupt_idx_is_rejected(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x00\x00\x09\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        read_idx(p)
