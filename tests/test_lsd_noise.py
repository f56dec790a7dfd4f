"""LSD under 30% symmetric label noise on digits: higher final test Recall@1, less memorisation.

Training labels only are corrupted (P_cc = 0.7, P_cc' = 0.3/9); the test split is clean. The
margins are asserted relative to the spread over three seeds, never against a fixed number.
"""

import pytest

import dmllab as dl
from dmllab.experiments import run_variants


@pytest.mark.slow
def test_lsd_beats_the_baseline_under_label_noise():
    base = dl.Config(dataset="digits", split="stratified", test_fraction=0.4, noise_rate=0.3,
                     embedding_dim=32, loss="triplet", positives="random", negatives="semihard",
                     classes_per_batch=10, samples_per_class=8, epochs=30, batches_per_epoch=15)
    results = run_variants(base, {"baseline": {}, "lsd": {"lsd_alpha": 1000.0}}, seeds=(0, 1, 2))
    print(results.summary(["recall@1", "memorisation"]).to_string())
    recall = results.difference("recall@1", "lsd", "baseline")
    assert recall["difference"] > recall["spread"], recall
    memorised = results.difference("memorisation", "baseline", "lsd")
    assert memorised["difference"] > memorised["spread"], memorised
