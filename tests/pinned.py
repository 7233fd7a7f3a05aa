"""Batches pinned from earlier versions of the library: the configurations, and how one batch is made.

``python tests/pinned.py`` records ``CONFIGS`` into ``tests/data/pinned.pt`` (recorded from commit a56b29a, before
the core's refactor); ``python tests/pinned.py --shapes`` records ``SHAPED`` (samples of other ranks: clips,
spectrograms, waveforms, cut over their last two dimensions) into ``tests/data/pinned_shapes.pt`` (recorded from
commit 29de3a8, before CutMix regions spanned other dimensions). ``test_pinned.py`` checks that the same seed and
settings still give those partners, weights, boxes and targets bit for bit, and those pixels up to float32 rounding.
"""

import sys
from pathlib import Path

import torch

PINNED = Path(__file__).parent / "data" / "pinned.pt"
PINNED_SHAPES = Path(__file__).parent / "data" / "pinned_shapes.pt"
B, SHAPE = 8, (3, 12, 10)

CONFIGS = {
    "mixup": dict(alpha=0.4),
    "mixup_prob": dict(alpha=0.4, prob=0.6),
    "mixup_batchwise": dict(alpha=1.0, per_sample=False),
    "cutmix": dict(alpha=0, cutmix_alpha=1.0),
    "cutmix_minmax": dict(alpha=0, cutmix_minmax=(0.2, 0.6), fold=False),
    "cutmix_uncorrected": dict(alpha=0, cutmix_alpha=1.0, correct_lam=False),
    "switch": dict(alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=0.8),
    "switch_uint8_normalised": dict(
        alpha=0.8, cutmix_alpha=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), uint8=True
    ),
    "switch_cycle_batchwise": dict(alpha=0.8, cutmix_alpha=1.0, cycle=True, per_sample=False),
    "soft": dict(alpha=0.8, cutmix_alpha=1.0, soft_targets=True, num_classes=5, label_smoothing=0.1),
    "float_targets_mixed": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.7, stack_y=False, float_targets=True),
    "dense_masks": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.9, dense_targets=True, dense="mask"),
    "dense_maps_mixed": dict(alpha=0.8, cutmix_alpha=1.0, dense_targets=True, dense="map", stack_y=False),
    "disabled": dict(alpha=0.4, enabled=False),
}

SHAPED = {
    "clip_cutmix": dict(alpha=0, cutmix_alpha=1.0, shape=(4, 3, 12, 10)),
    "clip_switch_uint8": dict(alpha=0.8, cutmix_alpha=1.0, prob=0.8, shape=(4, 3, 11, 9), uint8=True),
    "clip_minmax_batchwise": dict(alpha=0, cutmix_minmax=(0.3, 0.7), per_sample=False, shape=(3, 2, 9, 7)),
    "clip_dense_masks": dict(alpha=0.8, cutmix_alpha=1.0, dense_targets=True, dense="mask", shape=(4, 3, 12, 10)),
    "spectrogram_switch": dict(alpha=0.8, cutmix_alpha=1.0, switch_prob=0.7, shape=(1, 16, 25)),
    "spectrogram_soft": dict(alpha=0.4, cutmix_alpha=1.0, soft_targets=True, num_classes=5, shape=(2, 13, 20)),
    "waveform_cutmix_uncorrected": dict(alpha=0, cutmix_alpha=0.5, correct_lam=False, shape=(2, 51)),
}
ALL = {**CONFIGS, **SHAPED}


def samples(config):
    """The batch's samples: images (float32 or uint8) with class, float, mask or map targets."""
    g = torch.Generator().manual_seed(1234)
    shape = config.get("shape", SHAPE)
    if config.get("uint8"):
        xs = torch.randint(0, 256, (B, *shape), dtype=torch.uint8, generator=g)
    else:
        xs = torch.rand((B, *shape), generator=g)
    if config.get("dense") == "mask":
        ys = torch.randint(0, 4, (B, *shape[-2:]), dtype=torch.uint8, generator=g)
    elif config.get("dense") == "map":
        ys = torch.rand((B, 2, *shape[-2:]), generator=g)
    elif config.get("float_targets"):
        ys = torch.rand((B, 5), generator=g)
    else:
        ys = torch.randint(0, 5, (B,), generator=g)
    return [(xs[i].clone(), ys[i].clone()) for i in range(B)]


def batches(name, collate_type, count=3, device="cpu"):
    """``count`` successive batches of one configuration (mixed on ``device``), as dicts of CPU tensors."""
    config = dict(ALL[name])
    for key in ("uint8", "dense", "float_targets", "shape"):
        config.pop(key, None)
    collate = collate_type(**config, device=device, seed=7)
    out = []
    for _ in range(count):
        batch = collate(samples(ALL[name])).finish()
        fields = dict(zip(batch._fields, batch))
        fields["perm"] = batch.perm
        if "lam" not in fields:
            fields["lam"] = batch.lam
        out.append({k: v.cpu().clone() for k, v in fields.items()})
    return out


def draw_args(name):
    """The keyword arguments of ``draw_params`` for a configuration (those it has)."""
    names = ("alpha", "cutmix_alpha", "cutmix_minmax", "switch_prob", "prob", "fold", "per_sample", "cycle")
    return {k: v for k, v in ALL[name].items() if k in (*names, "correct_lam")}


if __name__ == "__main__":
    from mixup_collate import MixupCollate
    from mixup_collate.params import draw_params

    def params(name):
        drawn = draw_params(B, SHAPE, **draw_args(name), generator=torch.Generator().manual_seed(11))
        return {"perm": drawn.perm, "lam": drawn.lam, "rows": drawn.rows, "boxes": drawn.boxes}

    if sys.argv[1:] == ["--shapes"]:

        def drawn(name):
            shape = SHAPED[name]["shape"]
            params = draw_params(B, shape, **draw_args(name), generator=torch.Generator().manual_seed(11))
            return {"perm": params.perm, "lam": params.lam, "mode": params.mode, "boxes": params.boxes}

        torch.save(
            {name: {"batches": batches(name, MixupCollate), "params": drawn(name)} for name in SHAPED}, PINNED_SHAPES
        )
        print(f"wrote {PINNED_SHAPES}")
        sys.exit()
    PINNED.parent.mkdir(exist_ok=True)
    record = {
        name: {"batches": batches(name, MixupCollate), "params": params(name)} for name in CONFIGS if name != "disabled"
    }
    record["disabled"] = {"batches": batches("disabled", MixupCollate)}
    torch.save(record, PINNED)
    print(f"wrote {PINNED}")
