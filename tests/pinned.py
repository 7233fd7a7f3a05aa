"""Batches pinned from an earlier version of the library: the configurations, and how one batch is made.

``python tests/pinned.py`` records them into ``tests/data/pinned.pt`` (recorded from commit a56b29a, before the
core's refactor); ``test_pinned.py`` checks that the same seed and settings still give those partners, weights,
boxes and targets bit for bit, and those pixels up to float32 rounding.
"""

from pathlib import Path

import torch

PINNED = Path(__file__).parent / "data" / "pinned.pt"
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


def samples(config):
    """The batch's samples: images (float32 or uint8) with class, float, mask or map targets."""
    g = torch.Generator().manual_seed(1234)
    if config.get("uint8"):
        xs = torch.randint(0, 256, (B, *SHAPE), dtype=torch.uint8, generator=g)
    else:
        xs = torch.rand((B, *SHAPE), generator=g)
    if config.get("dense") == "mask":
        ys = torch.randint(0, 4, (B, *SHAPE[1:]), dtype=torch.uint8, generator=g)
    elif config.get("dense") == "map":
        ys = torch.rand((B, 2, *SHAPE[1:]), generator=g)
    elif config.get("float_targets"):
        ys = torch.rand((B, 5), generator=g)
    else:
        ys = torch.randint(0, 5, (B,), generator=g)
    return [(xs[i].clone(), ys[i].clone()) for i in range(B)]


def batches(name, collate_type, count=3, device="cpu"):
    """``count`` successive batches of one configuration (mixed on ``device``), as dicts of CPU tensors."""
    config = dict(CONFIGS[name])
    for key in ("uint8", "dense", "float_targets"):
        config.pop(key, None)
    collate = collate_type(**config, device=device, seed=7)
    out = []
    for _ in range(count):
        batch = collate(samples(CONFIGS[name])).finish()
        fields = dict(zip(batch._fields, batch))
        fields["perm"] = batch.perm
        if "lam" not in fields:
            fields["lam"] = batch.lam
        out.append({k: v.cpu().clone() for k, v in fields.items()})
    return out


def draw_args(name):
    """The keyword arguments of ``draw_params`` for a configuration (those it has)."""
    names = ("alpha", "cutmix_alpha", "cutmix_minmax", "switch_prob", "prob", "fold", "per_sample", "cycle")
    return {k: v for k, v in CONFIGS[name].items() if k in (*names, "correct_lam")}


if __name__ == "__main__":
    from mixup_collate import MixupCollate
    from mixup_collate.params import draw_params

    def params(name):
        drawn = draw_params(B, SHAPE, **draw_args(name), generator=torch.Generator().manual_seed(11))
        return {"perm": drawn.perm, "lam": drawn.lam, "rows": drawn.rows, "boxes": drawn.boxes}

    PINNED.parent.mkdir(exist_ok=True)
    record = {
        name: {"batches": batches(name, MixupCollate), "params": params(name)} for name in CONFIGS if name != "disabled"
    }
    record["disabled"] = {"batches": batches("disabled", MixupCollate)}
    torch.save(record, PINNED)
    print(f"wrote {PINNED}")
