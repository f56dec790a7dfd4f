"""The augmented-samples figure: an image's evaluation view beside training draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dmllab as dl
from dmllab.data.example_folder import write_example_folder
from dmllab.data.loader import augmented_views
from dmllab.viz import augmented_samples


def test_the_figure_shows_the_views_of_one_image_for_a_dataset_or_a_run(tmp_path):
    root = write_example_folder(tmp_path, classes=3, per_class=4, size=24)
    data = dl.data.load("folder", root=root, image_size=16)
    fig = augmented_samples(data, row=5, views=3)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == [
        "evaluation",
        "training 1",
        "training 2",
        "training 3",
    ]
    expected = augmented_views(data.x, 5, "dml-standard", 3)
    for ax, view in zip(axes, expected, strict=True):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), view.permute(1, 2, 0).numpy())
    assert "class 01_triangle" in fig._suptitle.get_text()
    assert fig._repr_png_().startswith(b"\x89PNG")
    config = dl.Config(dataset="folder", dataset_options={"root": str(root), "image_size": 16},
                       split="stratified", model="cnn", model_options={"channels": [4]},
                       embedding_dim=4, classes_per_batch=2, samples_per_class=2, epochs=1,
                       batches_per_epoch=1, augment="dml-standard", seed=3)  # fmt: skip
    run = dl.fit(config, progress=False)
    drawn = augmented_samples(run, row=0, views=2).get_axes()[2].get_images()[0].get_array()
    own = augmented_views(run.train.x, 0, "dml-standard", 2, seed=3)[2]
    np.testing.assert_array_equal(drawn, own.permute(1, 2, 0).numpy())


def test_tensors_in_memory_have_no_augmented_samples():
    with pytest.raises(ValueError, match="transforms image files"):
        augmented_samples(dl.data.load("digits"))
    with pytest.raises(TypeError, match="pass a Run or a Dataset"):
        augmented_samples(torch.zeros(3, 4))
