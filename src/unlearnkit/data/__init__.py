"""Datasets (one module each, registered in DATASETS) and forget-set selection (splits)."""

from unlearnkit.data.base import DATASETS, ImageDataset, assign_split

# Importing a loader module registers it.
from unlearnkit.data import synthetic  # noqa: F401  (the built-in default)
from unlearnkit.data import celeba  # noqa: F401
from unlearnkit.data import cifar10  # noqa: F401
from unlearnkit.data import digits  # noqa: F401
from unlearnkit.data import fashion_mnist  # noqa: F401
from unlearnkit.data import folder  # noqa: F401
from unlearnkit.data import surf  # noqa: F401
