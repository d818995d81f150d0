"""revlearn: exact hyperparameter gradients by running training (momentum SGD, Adam) backwards.

Maclaurin, Duvenaud & Adams, "Gradient-based Hyperparameter Optimization
through Reversible Learning", ICML 2015.
"""
from .adam import Adam
from .buffer import BigIntBuffer, InfoBuffer
from .checkpoint import hypergrad_checkpointed
from .datasets import Dataset, batch_indices, digits_splits, load_digits, load_mnist
from .errors import BufferUnderflowError, ReversalError
from .fixedpoint import ExactArray
from . import kernels  # noqa: F401  (revlearn.kernels.ENABLED: compiled kernels in use?)
from .hypergrad import HypergradResult, hypergrad, hypergrad_unrolled, train_exact
from .models import MLP, logistic_regression
from .momentum import Momentum
from .training import train
from .naive import reverse_naive
from .rational import rational_value, to_rational

__version__ = "0.1.0"

__all__ = [
    "Adam", "Momentum", "BigIntBuffer", "InfoBuffer", "ExactArray", "BufferUnderflowError", "ReversalError",
    "hypergrad", "hypergrad_unrolled", "hypergrad_checkpointed", "HypergradResult", "train", "train_exact", "reverse_naive",
    "MLP", "logistic_regression", "Dataset", "batch_indices", "digits_splits", "load_digits",
    "load_mnist", "rational_value", "to_rational",
]
