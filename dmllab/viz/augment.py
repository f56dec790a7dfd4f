"""What the named transforms make of one image: its evaluation view beside training draws.

fig = augmented_samples(run, row=0)             # the run's augment and seed, its training split
fig = augmented_samples(dataset, row=3, augment="dml-standard", views=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dmllab.data.dataset import Dataset
from dmllab.data.loader import augmented_views
from dmllab.viz._inputs import is_run

if TYPE_CHECKING:  # matplotlib is imported where the figure is drawn
    import matplotlib.figure


def augmented_samples(
    source: Any,
    row: int = 0,
    *,
    augment: str | None = None,
    views: int = 7,
    seed: int | None = None,
) -> matplotlib.figure.Figure:
    """A matplotlib figure (a PNG in any notebook): image `row` as evaluation reads it, then
    `views` draws of the training transform (`dmllab.data.loader.augmented_views`).

    source:  a Run (its training split; `augment` and `seed` default to its config's) or a
             Dataset of image files (`augment` defaults to "dml-standard", `seed` to 0).
    Raises ValueError for data that are not image files (tensors held in memory).
    """
    from dmllab.viz._static import ShownFigure

    if is_run(source):
        data = source.train
        augment = source.config.augment if augment is None else augment
        seed = source.config.seed if seed is None else seed
    elif isinstance(source, Dataset):
        data = source
    else:
        raise TypeError(
            "augmented_samples: pass a Run or a Dataset of image files; got "
            f"{type(source).__name__}"
        )
    augment = "dml-standard" if augment is None else augment
    images = augmented_views(data.x, row, augment, views, seed=0 if seed is None else seed)
    label = int(data.y[row])
    folders = data.meta.get("class_names")  # an image folder's class names
    name = folders[label] if folders and label < len(folders) else data.label_names([label])[0]
    fig = ShownFigure(figsize=(1.5 * len(images), 1.9), layout="constrained")
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for column, (ax, image) in enumerate(zip(axes, images, strict=True)):
        ax.imshow(image.permute(1, 2, 0).numpy(), vmin=0, vmax=1)
        ax.set_title("evaluation" if column == 0 else f"training {column}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{augment}: row {row} (class {name})", fontsize=9)
    return fig
