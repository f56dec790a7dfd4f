"""Small training configurations shared by the trainer's tests and the claim tests."""

from dmllab.config import Config


def digits_config(**changes) -> Config:
    """Digits under the zero-shot protocol (train classes 0-4, test classes 5-9), small and fast;
    `changes` override any field."""
    base = dict(
        dataset="digits",
        split="classes",
        test_fraction=0.5,
        epochs=6,
        batches_per_epoch=15,
        classes_per_batch=5,
        samples_per_class=8,
        embedding_dim=16,
        seed=0,
    )
    return Config(**{**base, **changes})
