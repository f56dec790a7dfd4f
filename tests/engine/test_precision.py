"""Mixed precision: only the trunk runs under autocast; the loss of every loss and geometry under
bf16-mixed equals float32's within a stated tolerance, with finite gradients; float16 needs
CUDA."""

import pytest
import torch

import dmllab as dl
from dmllab.build import build_components
from dmllab.config import reads_tuples
from dmllab.engine import AutocastForward, Precision
from dmllab.losses import LOSSES
from dmllab.train import step_loss
from train_configs import digits_config

CPU = torch.device("cpu")
GEOMETRIES = ["euclidean", "sqeuclidean", "cosine", "bregman", "bregman-maxaffine"]
# bfloat16 keeps 8 bits of mantissa (relative rounding 2**-8 = 0.004) in the trunk's two layers:
# the loss may move by a few per cent of its value, and not more.
RTOL, ATOL = 0.05, 0.02


def loss_and_grads(config, precision):
    torch.manual_seed(0)
    data = dl.data.load("digits")
    model, geometry, loss_fn = build_components(config, (64,), 10, None, classes=torch.arange(10))
    forward = AutocastForward(model, Precision(precision, CPU)) if precision != "32" else model
    x, y = data.x[:40].float(), data.y[:40]
    seen = {}
    pairwise = geometry.pairwise

    def spy(a, b):
        seen["dtype"] = a.dtype
        return pairwise(a, b)

    geometry.pairwise = spy
    torch.manual_seed(1)  # the same random choices of pairs in both precisions
    loss, _ = step_loss(forward, loss_fn, x, y)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), grads, seen.get("dtype")


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_bf16_mixed_matches_float32_with_finite_gradients(loss, geometry):
    learned = geometry.startswith("bregman")
    config = dl.Config(
        dataset="digits",
        loss=loss,
        geometry=geometry,
        normalize=not learned,
        positives="nearest" if reads_tuples(loss) else "random",
        samples_per_class=4,
        embedding_dim=16,
    )
    full, full_grads, _ = loss_and_grads(config, "32")
    mixed, mixed_grads, dtype = loss_and_grads(config, "bf16-mixed")
    assert dtype == torch.float32  # distances are computed in float32 under autocast
    assert torch.isfinite(mixed_grads).all()
    assert mixed == pytest.approx(full, rel=RTOL, abs=ATOL)
    cosine = torch.nn.functional.cosine_similarity(full_grads, mixed_grads, dim=0)
    assert cosine > 0.9, f"the gradients point elsewhere under bf16 (cosine {cosine:.3f})"


def test_the_trunk_runs_in_bfloat16_and_embeddings_come_out_in_float32():
    inner = []
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    model.register_forward_hook(lambda module, args, out: inner.append(out.dtype))
    z = AutocastForward(model, Precision("bf16-mixed", CPU))(torch.randn(5, 4))
    assert inner == [torch.bfloat16] and z.dtype == torch.float32


def test_a_bf16_mixed_fit_trains_and_float16_is_refused_on_the_cpu():
    run = dl.fit(digits_config(epochs=2, batches_per_epoch=3, precision="bf16-mixed"),
                 progress=False)  # fmt: skip
    assert run.history[-1]["loss"] < run.history[0]["loss"] * 2
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    with pytest.raises(ValueError, match=r"'16-mixed' needs a CUDA device.*bf16-mixed"):
        dl.fit(digits_config(epochs=1, precision="16-mixed"), progress=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision("fp8", CPU)
