"""Data: datasets by name, splits, label noise, merged-class views and the P x K batch sampler.

    data = load("digits")                       # see available() for every name
    train, test = split(data, how="classes")    # zero-shot protocol: disjoint classes
    noisy = noise.inject(train, rate=0.2)       # training labels only
    sampler = ClassBalancedSampler(noisy.y, classes_per_batch=8, samples_per_class=4)

`dmllab.build.prepare(config)` chains these for a Config.
"""

from dmllab.data import noise
from dmllab.data.dataset import Dataset
from dmllab.data.folders import BadImagesError
from dmllab.data.images import BadImageError, LazyImages
from dmllab.data.noise import KINDS as NOISE_KINDS
from dmllab.data.registry import DATASETS, available, load, options, resolve
from dmllab.data.sampler import ClassBalancedSampler
from dmllab.data.splits import HOWS as SPLITS
from dmllab.data.splits import Splits, split, validation_split
from dmllab.data.superclass import superclass

__all__ = [
    "DATASETS",
    "NOISE_KINDS",
    "SPLITS",
    "BadImageError",
    "BadImagesError",
    "ClassBalancedSampler",
    "Dataset",
    "LazyImages",
    "Splits",
    "available",
    "load",
    "noise",
    "options",
    "resolve",
    "split",
    "superclass",
    "validation_split",
]
