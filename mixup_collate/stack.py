"""Stacking a list of samples into one CPU batch, with errors that name the sample at fault.

Runs wherever the DataLoader calls ``collate_fn`` (a worker process when ``num_workers > 0``), so
nothing here touches an accelerator: buffers are plain, shared (in a worker, so the batch crosses
the process boundary without another copy) or page-locked (only when the main process asks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate

__all__ = ["Stacked", "stack_samples"]


@dataclass
class Stacked:
    """A stacked, unmixed batch on the CPU.

    Attributes:
        x: ``(B, *S)`` inputs, one contiguous buffer.
        y: ``(B,)`` int64 class indices or ``(B, *K)`` float targets.
        extras: the samples' other fields, collated as ``default_collate`` would: keyed by name for
            dict samples, by position (2, 3, ...) for tuple samples.
    """

    x: Tensor
    y: Tensor
    extras: dict[Any, Any] = field(default_factory=dict)


def _describe(value: Any) -> str:
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {tuple(value.shape)}"
    return type(value).__name__


def _is_pil_image(value: Any) -> bool:
    return any(cls.__module__.startswith("PIL.") and cls.__name__ == "Image" for cls in type(value).__mro__)


def _split(sample: Any, index: int, input_key: str, target_key: str) -> tuple[Any, Any, dict[Any, Any]]:
    """``(input, target, extras)`` of one sample: a mapping with the two keys, or ``(input, target, *rest)``."""
    if type(sample) is tuple and len(sample) == 2:  # the common case, without the abc checks below
        return sample[0], sample[1], {}
    if isinstance(sample, Mapping):
        missing = [k for k in (input_key, target_key) if k not in sample]
        if missing:
            raise KeyError(
                f"sample {index} has no key {missing[0]!r} (its keys: {sorted(map(str, sample))}); "
                "set MixupCollate(input_key=..., target_key=...) to the dataset's field names"
            )
        extras = {k: v for k, v in sample.items() if k not in (input_key, target_key)}
        return sample[input_key], sample[target_key], extras
    if isinstance(sample, Sequence) and not isinstance(sample, (str, bytes)) and len(sample) >= 2:
        return sample[0], sample[1], {i: v for i, v in enumerate(sample) if i >= 2}
    raise TypeError(
        f"sample {index} is a {_describe(sample)}; MixupCollate expects (input, target, ...) tuples "
        f"or dicts with keys {input_key!r} and {target_key!r}"
    )


def _as_input_tensor(value: Any, index: int) -> Tensor:
    if type(value) is Tensor:
        return value
    if isinstance(value, Tensor):
        # Plain tensors: tv_tensors.Image and friends stack without __torch_function__ overhead.
        return value.as_subclass(Tensor)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if _is_pil_image(value):
        raise TypeError(
            f"sample {index}'s input is a PIL image; convert it to a tensor in the dataset's transform, "
            "e.g. torchvision.transforms.v2.PILToTensor() (keeps uint8, the fast path) or v2.ToImage()"
        )
    raise TypeError(f"sample {index}'s input is a {_describe(value)}; expected a tensor or numpy array")


def _empty(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool, pinned: bool) -> Tensor:
    if shared:
        # As default_collate does in workers: write straight into shared memory.
        numel = int(np.prod(shape))
        storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
        return torch.empty(0, dtype=dtype).set_(storage).view(shape)
    return torch.empty(shape, dtype=dtype, pin_memory=pinned)


def _stack_inputs(values: list[Any], *, shared: bool, pinned: bool) -> Tensor:
    tensors = [_as_input_tensor(v, i) for i, v in enumerate(values)]
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.shape != first.shape or t.dtype != first.dtype:
            raise ValueError(
                f"sample {i}'s input has shape {tuple(t.shape)} and dtype {t.dtype}, but sample 0's has "
                f"shape {tuple(first.shape)} and dtype {first.dtype}; all inputs of a batch must match "
                "(resize or crop them to one size in the dataset's transform)"
            )
        if t.device.type != "cpu":
            raise ValueError(
                f"sample {i}'s input is on {t.device}; datasets should return CPU tensors "
                "(MixupCollate moves the whole batch to the device at once)"
            )
    out = _empty((len(tensors), *first.shape), first.dtype, shared=shared, pinned=pinned)
    return torch.stack(tensors, out=out)


def _target_kind(value: Any, index: int) -> tuple[str, Any]:
    """Classify one target as ``("index", int)`` or ``("float", Tensor)``, or raise."""
    if type(value) is int:  # the common case first
        return "index", value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"sample {index}'s target is a bool; use an int class index or a float tensor")
    if isinstance(value, (int, np.integer)):
        return "index", int(value)
    if isinstance(value, float):
        return "float", torch.tensor(value, dtype=torch.float32)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Tensor):
        value = value.as_subclass(Tensor)
        if value.is_floating_point():
            return "float", value
        if value.dtype != torch.bool and not value.is_complex() and value.ndim == 0:
            return "index", int(value)
    raise TypeError(
        f"sample {index}'s target is a {_describe(value)}; targets must be class indices "
        "(int or 0-d integer tensor) or float tensors (one-hot, multi-hot, regression)"
    )


def _stack_targets(values: list[Any]) -> Tensor:
    kinds = [_target_kind(v, i) for i, v in enumerate(values)]
    kind0, first = kinds[0]
    for i, (kind, value) in enumerate(kinds):
        if kind != kind0:
            raise TypeError(
                f"sample {i}'s target is a {'class index' if kind == 'index' else 'float target'} but "
                f"sample 0's is a {'class index' if kind0 == 'index' else 'float target'}; "
                "a batch needs one kind of target"
            )
        if kind == "float" and (value.shape != first.shape or value.dtype != first.dtype):
            raise ValueError(
                f"sample {i}'s target has shape {tuple(value.shape)} and dtype {value.dtype}, but "
                f"sample 0's has shape {tuple(first.shape)} and dtype {first.dtype}"
            )
    if kind0 == "index":
        return torch.tensor([v for _, v in kinds], dtype=torch.int64)
    return torch.stack([v for _, v in kinds])


def stack_samples(
    samples: Sequence[Any],
    *,
    input_key: str = "image",
    target_key: str = "label",
    shared: bool = False,
    pinned: bool = False,
) -> Stacked:
    """Stack ``samples`` (``(input, target, ...)`` tuples or dicts) into one :class:`Stacked` batch.

    Inputs (tensors or numpy arrays of one shape and dtype) are written into one contiguous
    buffer: in shared memory when ``shared`` (inside a DataLoader worker), page-locked when
    ``pinned`` (the main process, before a copy to a CUDA device).
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty batch (got 0 samples)")
    parts = [_split(s, i, input_key, target_key) for i, s in enumerate(samples)]
    first_keys = list(parts[0][2])
    for i, (_, _, extras) in enumerate(parts):
        if list(extras) != first_keys:
            raise ValueError(f"sample {i} has extra fields {list(extras)} but sample 0 has {first_keys}")
    x = _stack_inputs([p[0] for p in parts], shared=shared, pinned=pinned)
    y = _stack_targets([p[1] for p in parts])
    extras = {k: default_collate([p[2][k] for p in parts]) for k in first_keys}
    return Stacked(x=x, y=y, extras=extras)
