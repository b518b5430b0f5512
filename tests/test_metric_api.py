"""``SegmentationMetrics`` as a training-loop metric: keyword-only update, clear refusals, reset, state_dict,
the exact F-measure sum, the tensor (device) kernel against the numpy one, and torchmetrics' per-class IoU."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

from imagenets import SegmentationMetrics
from imagenets.datasets import save_prediction
from imagenets.demo.synthetic import synthetic_pair
from imagenets.evaluation.engine import metrics as metrics_module
from imagenets.evaluation.engine.kernel import boundary_mask, boundary_width, joint_table
from imagenets.evaluation.engine.matchfile import Match
from imagenets.evaluation.engine.tensor_kernel import boundaries, joint_tables
from imagenets.subsets import IGNORE

K = 50


def pairs(count: int = 6, k: int = K, sides=(20, 60), out_of_range: float = 0.5) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(gt, pred) id maps as the demo makes them: objects, an ignore band, a few ids above K."""
    return [synthetic_pair(3, i, 1 + i % k, k, sides=sides, quality=0.6, out_of_range=out_of_range)
            for i in range(count)]


def same(a: Dict[str, object], b: Dict[str, object]) -> bool:
    """Equal results, NaN (an empty size bucket) equal to NaN."""
    nan = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return {k: nan(v) for k, v in a.items()} == {k: nan(v) for k, v in b.items()}


def counted(items, k: int = K, **kwargs) -> SegmentationMetrics:
    metrics = SegmentationMetrics(k, **kwargs)
    for gt, pred in items:
        metrics.update(preds=pred, target=gt)
    return metrics


# ---- the argument order: by name only ---------------------------------------------------------

def test_positional_update_is_refused_naming_the_keywords():
    gt, pred = pairs(1)[0]
    metrics = SegmentationMetrics(K)
    with pytest.raises(TypeError, match=r"update\(preds=\.\.\., target=\.\.\.\)"):
        metrics.update(gt, pred)
    with pytest.raises(TypeError, match="preds= .* and target="):
        metrics.update(preds=pred)
    assert metrics.images == 0


def test_a_swapped_target_is_named_with_the_fix_and_the_batch_counts_nowhere():
    gt, pred = np.zeros((2, 8, 8), np.int64), np.zeros((2, 8, 8), np.int64)
    pred[1, :4] = 60                        # a cluster id above K: fine in preds, impossible in a target
    metrics = SegmentationMetrics(K)
    with pytest.raises(ValueError, match=r"target holds id 60: ground-truth ids are 0\.\.50 and 1000 .*preds"):
        metrics.update(preds=gt, target=pred)
    assert metrics.images == 0 and not metrics.counts.any()
    metrics.update(preds=pred, target=gt)
    assert metrics.images == 2 and metrics.out_of_range_pixels == 32


# ---- defect 20: clear refusals ------------------------------------------------------------------

@pytest.mark.parametrize("convert", [np.asarray, torch.from_numpy], ids=["numpy", "tensor"])
@pytest.mark.parametrize("which", ["preds", "target"])
def test_negative_ids_are_a_value_error_naming_the_argument(convert, which):
    good = np.zeros((4, 5), np.int64)
    bad = good.copy()
    bad[1, 2] = -3
    args = {"preds": convert(good), "target": convert(good), which: convert(bad)}
    with pytest.raises(ValueError, match=f"{which} holds id -3: ids are 0..65535"):
        SegmentationMetrics(K).update(**args)


@pytest.mark.parametrize("k, error, says", [
    (0, ValueError, "num_classes 0: K is 1..999"), (-4, ValueError, "num_classes -4"),
    (1000, ValueError, "1000 is the ignore id"), (2.5, TypeError, "num_classes is 2.5"),
    (True, TypeError, "num_classes is True"), ("50", TypeError, "num_classes is '50'"),
])
def test_a_bad_number_of_classes_is_refused(k, error, says):
    with pytest.raises(error, match=says):
        SegmentationMetrics(k)


def test_numpy_integer_classes_are_accepted():
    assert SegmentationMetrics(np.int64(50)).num_classes == 50


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (3, 0), (2, 0, 4)])
def test_empty_maps_are_a_value_error(shape):
    ids = np.zeros(shape, np.int32)
    with pytest.raises(ValueError, match="at least one pixel"):
        SegmentationMetrics(K).update(preds=ids, target=ids)


def test_an_empty_batch_adds_nothing():
    metrics = SegmentationMetrics(K)
    metrics.update(preds=np.zeros((0, 4, 4), np.int32), target=np.zeros((0, 4, 4), np.int32))
    assert metrics.images == 0


@pytest.mark.parametrize("size, error, says", [
    ((1e5, 1e5), TypeError, "two integers"), ((100_000, 100_000), ValueError, "at most 64,000,000 pixels"),
    ((0, 4), ValueError, "at least 1x1"), ((4,), TypeError, r"pass \(H, W\)"), ("ab", TypeError, "two integers"),
])
def test_save_prediction_refuses_a_bad_size_before_allocating(tmp_path, size, error, says):
    with pytest.raises(error, match=says):
        save_prediction(tmp_path, "n01/x.png", np.zeros((2, 3), np.int32), size=size)
    assert not any(tmp_path.iterdir())


def test_save_prediction_takes_tensor_and_numpy_sizes(tmp_path):
    path = save_prediction(tmp_path, "n01/x.png", np.zeros((2, 3), np.int32), size=(torch.tensor(4), np.int64(6)))
    assert path.is_file()


# ---- reset, state_dict ---------------------------------------------------------------------------

def test_reset_forgets_every_image():
    items = pairs()
    metrics = counted(items[:3])
    metrics.reset()
    for gt, pred in items[3:]:
        metrics.update(preds=pred, target=gt)
    assert same(metrics.compute(), counted(items[3:]).compute()) and metrics.images == 3


def test_state_dict_survives_a_weights_only_checkpoint(tmp_path):
    items = pairs()
    first = counted(items[:4])
    torch.save({"metric": first.state_dict()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["metric"]
    assert state["counts"].dtype == torch.int64 and state["f_sum"].dtype == torch.int64
    resumed = SegmentationMetrics(K)
    resumed.load_state_dict(state)
    for gt, pred in items[4:]:
        resumed.update(preds=pred, target=gt)
    whole = counted(items)
    assert same(resumed.compute(), whole.compute()) and resumed.f_sum == whole.f_sum


def test_load_state_dict_takes_numpy_arrays_and_checks_them():
    state = {key: (value.numpy() if isinstance(value, torch.Tensor) else value)
             for key, value in counted(pairs(2)).state_dict().items()}
    metrics = SegmentationMetrics(K)
    metrics.load_state_dict(state)
    assert metrics.images == 2
    with pytest.raises(ValueError, match="num_classes 50, this metric of 300"):
        SegmentationMetrics(300).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks counts"):
        metrics.load_state_dict({k: v for k, v in state.items() if k != "counts"})
    with pytest.raises(ValueError, match="negative counts"):
        metrics.load_state_dict({**state, "counts": -state["counts"] - 1})
    with pytest.raises(ValueError, match="'images' is -1"):
        metrics.load_state_dict({**state, "images": -1})
    assert metrics.images == 2  # a refused state changes nothing


def test_sync_outside_torch_distributed_is_a_copy():
    metrics = counted(pairs(3))
    total = metrics.sync()
    assert total is not metrics and same(total.compute(), metrics.compute())


# ---- exactness -----------------------------------------------------------------------------------

def test_fmeasure_does_not_depend_on_the_order_of_the_images():
    items = pairs(12, sides=(8, 30))
    forward, backward = counted(items), counted(items[::-1])
    halves = counted(items[1::2]).merge(counted(items[::2]))
    assert forward.f_sum == backward.f_sum == halves.f_sum
    exact = math.fsum(float(f) for f in counted(items, keep_images=True).image_counts().f)
    assert forward.f_sum == exact  # the correctly rounded sum


def test_without_boundaries_the_other_numbers_are_the_same():
    items = pairs()
    full, light = counted(items).compute(), counted(items, boundaries=False).compute()
    for key, value in full.items():
        if key in metrics_module.BOUNDARY_KEYS:
            assert math.isnan(light[key])
        else:
            assert same({key: light[key]}, {key: value}), key


# ---- the tensor kernel (what runs on a GPU) against the numpy kernel, here on the CPU -------------

@pytest.mark.parametrize("h, w", [(1, 1), (3, 7), (9, 9), (40, 33), (61, 80)])
def test_tensor_boundaries_equal_the_numpy_ones(h, w):
    rng = np.random.default_rng(h * w)
    ids = rng.integers(0, 3, size=(2, h, w)) * (rng.random((2, h, w)) < 0.3)
    d = boundary_width(h, w)
    got = boundaries(torch.from_numpy(ids), d).numpy()
    for i in range(2):
        assert np.array_equal(got[i], boundary_mask(ids[i], d))


@pytest.mark.parametrize("lut", [False, True])
def test_tensor_joint_tables_equal_the_numpy_ones(lut):
    match = Match.from_mapping({p: (p * 7) % (K + 1) for p in range(K + 10)}).lut if lut else None
    for gt, pred in pairs(5):
        (table,) = joint_tables(torch.from_numpy(gt), torch.from_numpy(pred), K, pred_lut=match)
        expected = joint_table(gt, pred, K, pred_lut=match)
        for field in ("gt_ids", "pred_ids", "counts"):
            assert np.array_equal(getattr(table, field), getattr(expected, field)), field
        assert (table.out_of_range, table.top_id) == (expected.out_of_range, expected.top_id)


def test_update_on_the_tensor_path_gives_exactly_the_numpy_numbers(monkeypatch):
    items = [(g[:20, :20], p[:20, :20]) for g, p in pairs(6, sides=(20, 40))]
    batch_gt = torch.from_numpy(np.stack([g for g, _ in items])).long()
    batch_pred = torch.from_numpy(np.stack([p for _, p in items])).int()
    on_host = SegmentationMetrics(K)
    on_host.update(preds=batch_pred, target=batch_gt)
    monkeypatch.setattr(metrics_module, "HOST_DEVICES", ())  # count CPU tensors as if on a GPU
    on_device = SegmentationMetrics(K)
    on_device.update(preds=batch_pred, target=batch_gt)
    assert np.array_equal(on_device.counts, on_host.counts) and on_device.f_sum == on_host.f_sum
    assert same(on_device.compute(), on_host.compute())
    with pytest.raises(ValueError, match="target holds id -1"):
        on_device.update(preds=batch_pred, target=batch_gt - 1)
    with pytest.raises(TypeError, match="argmax"):
        on_device.update(preds=batch_pred.float(), target=batch_gt)
    with pytest.raises(ValueError, match=r"target holds id 60: ground-truth"):
        on_device.update(preds=batch_gt, target=batch_pred.clamp(max=60).fill_(60))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_are_counted_on_the_gpu_with_the_cpu_numbers():
    items = [(g[:20, :20], p[:20, :20]) for g, p in pairs(6, sides=(20, 40))]
    gt = torch.from_numpy(np.stack([g for g, _ in items])).long()
    pred = torch.from_numpy(np.stack([p for _, p in items]))
    on_gpu, on_cpu = SegmentationMetrics(K), SegmentationMetrics(K)
    on_gpu.update(preds=pred.cuda(), target=gt.cuda())
    on_cpu.update(preds=pred, target=gt)
    assert np.array_equal(on_gpu.counts, on_cpu.counts) and on_gpu.f_sum == on_cpu.f_sum


# ---- torchmetrics ------------------------------------------------------------------------------------

def test_per_class_iou_equals_torchmetrics_jaccard():
    classification = pytest.importorskip("torchmetrics.classification", reason="torchmetrics is not installed")
    items = pairs(8, out_of_range=0.0)
    preds = [torch.from_numpy(p).long() for _, p in items]
    target = [torch.from_numpy(g).long() for g, _ in items]
    theirs = classification.MulticlassJaccardIndex(num_classes=K + 1, average=None, ignore_index=IGNORE)
    ours = SegmentationMetrics(K)
    for p, t in zip(preds, target):
        theirs.update(p, t)
        ours.update(preds=p, target=t)
    assert np.allclose(np.array(ours.compute()["IoUs"]) / 100, theirs.compute().numpy(), atol=1e-5, rtol=0)
