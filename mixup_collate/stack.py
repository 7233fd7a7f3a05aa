"""Stacking a list of samples into one CPU batch, with errors that name the sample at fault.

Runs wherever the DataLoader calls ``collate_fn`` (a worker process when ``num_workers > 0``), so
nothing here touches an accelerator: buffers are plain, shared (in a worker, so the batch crosses
the process boundary without another copy) or page-locked (only when the main process asks).

Validation is lazy: each part of the batch (fields, inputs, targets) first takes a fast path of a
few aggregate checks and one tensor op; only when that path declines or its op fails are the
samples checked one by one, which finds the sample at fault and raises with its index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate

from .batch import Stacked
from .detection import check_sizes, pack_targets

__all__ = ["stack_samples"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_dtype_of = attrgetter("dtype")


def _describe(value: Any) -> str:
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {tuple(value.shape)}"
    return type(value).__name__


def _is_pil_image(value: Any) -> bool:
    return any(cls.__module__.startswith("PIL.") and cls.__name__ == "Image" for cls in type(value).__mro__)


def _is_tv_tensor(value: Any, name: str) -> bool:
    """A ``torchvision.tv_tensors`` class such as ``Mask`` (recognised without importing torchvision)."""
    return any(cls.__module__.startswith("torchvision.") and cls.__name__ == name for cls in type(value).__mro__)


def _is_mask(value: Any) -> bool:
    return _is_tv_tensor(value, "Mask")


_BOXES_HINT = "pass MixupCollate(..., box_targets=True) to mix detection targets with their images, box by box"


@cache
def _torch_dtype(dtype: np.dtype) -> torch.dtype | None:
    """The torch dtype of numpy ``dtype`` in native byte order, or ``None`` when torch has none (object, str)."""
    try:
        return torch.from_numpy(np.empty(0, dtype.newbyteorder("="))).dtype
    except TypeError:
        return None


def _from_numpy(value: np.ndarray) -> Tensor:
    """A tensor of ``value`` (a dtype torch supports), copied to native byte order and C order when needed."""
    if not value.dtype.isnative or not value.flags.c_contiguous or any(step < 0 for step in value.strides):
        value = value.astype(value.dtype.newbyteorder("="), order="C")  # keeps 0-d arrays 0-d
    return torch.from_numpy(value)


# Splitting samples into fields.


def _split(sample: Any, index: int, input_key: str, target_key: str) -> tuple[Any, Any, dict[Any, Any]]:
    """``(input, target, extras)`` of one sample: a mapping with the two keys, or ``(input, target, *rest)``."""
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


def _columns_fast(samples: Sequence[Any], input_key: str, target_key: str) -> tuple[Any, Any, dict] | None:
    """``(inputs, targets, {field: values})`` if all samples are tuples/lists of one length or dicts of one key set."""
    types = set(map(type, samples))
    if types <= {tuple, list}:
        lengths = set(map(len, samples))
        if len(lengths) != 1 or lengths.pop() < 2:
            return None
        inputs, targets, *rest = zip(*samples)
        return inputs, targets, {i: list(values) for i, values in enumerate(rest, start=2)}
    if types == {dict}:
        keys = samples[0].keys()
        if input_key not in keys or target_key not in keys or not all(s.keys() == keys for s in samples):
            return None
        columns = {k: list(map(itemgetter(k), samples)) for k in keys}
        extras = {k: v for k, v in columns.items() if k not in (input_key, target_key)}
        return columns[input_key], columns[target_key], extras
    return None


def _columns_checked(samples: Sequence[Any], input_key: str, target_key: str) -> tuple[list, list, dict]:
    """As ``_columns_fast``, for any samples, raising for the first malformed one."""
    parts = [_split(s, i, input_key, target_key) for i, s in enumerate(samples)]
    first = parts[0][2]
    for i, (_, _, extras) in enumerate(parts):
        if extras.keys() != first.keys():
            missing = [k for k in first if k not in extras]
            added = [k for k in extras if k not in first]
            raise ValueError(
                f"sample {i} has extra fields {list(extras)} but sample 0 has {list(first)} "
                f"(sample {i} lacks {missing} and adds {added}); every sample needs the same fields"
            )
    extras = {k: [p[2][k] for p in parts] for k in first}
    return [p[0] for p in parts], [p[1] for p in parts], extras


# Inputs.


def _empty(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool, pinned: bool) -> Tensor:
    if shared:
        # As default_collate does in workers: write straight into shared memory.
        numel = int(np.prod(shape))
        storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
        return torch.empty(0, dtype=dtype).set_(storage).view(shape)
    return torch.empty(shape, dtype=dtype, pin_memory=pinned)


def _stack_inputs_fast(values: Sequence[Any], *, shared: bool, pinned: bool) -> Tensor | None:
    """One ``torch.stack`` (or ``np.stack``) into the buffer when all inputs are tensors or arrays of one dtype."""
    types = set(map(type, values))
    first = values[0]
    if all(issubclass(t, Tensor) for t in types):
        if len(set(map(_dtype_of, values))) != 1:
            return None  # torch.stack would cast silently within a dtype category
        out = _empty((len(values), *first.shape), first.dtype, shared=shared, pinned=pinned)
        try:
            torch.stack(values, out=out)  # raises on shape, device or layout differences
        except (RuntimeError, TypeError):
            return None
        return out
    if all(issubclass(t, np.ndarray) for t in types):
        dtypes = set(map(_dtype_of, values))
        dtype = _torch_dtype(first.dtype) if len(dtypes) == 1 else None
        if dtype is None:
            return None
        out = _empty((len(values), *first.shape), dtype, shared=shared, pinned=pinned)
        try:
            np.stack(values, out=out.numpy())  # any strides and byte order; raises on shape differences
        except (ValueError, TypeError):
            return None
        return out
    return None


def _as_input_tensor(value: Any, index: int) -> Tensor:
    if type(value) is Tensor:
        return value.detach()
    if isinstance(value, Tensor):
        return value.as_subclass(Tensor).detach()  # tv_tensors.Image and friends become plain tensors
    if isinstance(value, np.ndarray):
        if _torch_dtype(value.dtype) is None:
            raise TypeError(
                f"sample {index}'s input is a numpy array of dtype {value.dtype} and shape {tuple(value.shape)}; "
                "expected a numeric or bool dtype (an object array often wraps arrays of different shapes)"
            )
        return _from_numpy(value)
    if _is_pil_image(value):
        raise TypeError(
            f"sample {index}'s input is a PIL image; convert it to a tensor in the dataset's transform, "
            "e.g. torchvision.transforms.v2.PILToTensor() (keeps uint8, the fast path) or v2.ToImage()"
        )
    raise TypeError(f"sample {index}'s input is a {_describe(value)}; expected a tensor or numpy array")


def _alike(tensors: list[Tensor], field: str, hint: str) -> Tensor:
    """Sample 0's tensor, after checking every sample's has its shape and dtype (else an error naming the sample)."""
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.shape != first.shape or t.dtype != first.dtype:
            raise ValueError(
                f"sample {i}'s {field} has shape {tuple(t.shape)} and dtype {t.dtype}, but sample 0's has "
                f"shape {tuple(first.shape)} and dtype {first.dtype}; {hint}"
            )
    return first


def _stack_inputs_checked(values: Sequence[Any], *, shared: bool, pinned: bool) -> Tensor:
    """Check the inputs one by one, raising for the first that does not fit sample 0's, then stack them."""
    tensors = [_as_input_tensor(v, i) for i, v in enumerate(values)]
    first = _alike(
        tensors,
        "input",
        "all inputs of a batch must match (resize or crop them to one size in the dataset's transform)",
    )
    for i, t in enumerate(tensors):
        if t.device.type != "cpu":
            raise ValueError(
                f"sample {i}'s input is on {t.device}; datasets should return CPU tensors "
                "(MixupCollate moves the whole batch to the device at once)"
            )
        if t.layout != torch.strided:
            raise ValueError(f"sample {i}'s input is a {t.layout} tensor; convert it with .to_dense()")
    out = _empty((len(tensors), *first.shape), first.dtype, shared=shared, pinned=pinned)
    return torch.stack(tensors, out=out)


# Targets.


def _stack_targets_fast(values: Sequence[Any]) -> Tensor | None:
    """One ``torch.tensor`` for int or float scalars, one ``stack`` for tensors or arrays of one dtype."""
    types = set(map(type, values))
    if _is_mask(values[0]) or _is_tv_tensor(values[0], "BoundingBoxes"):
        return None  # refused, with a pointer to dense_targets or box_targets, by the checked path
    try:
        if types == {int}:  # numpy's conversion of Python ints: the same values, raising outside int64
            return torch.from_numpy(np.array(values, dtype=np.int64))
        if all(issubclass(t, (int, np.integer)) and not issubclass(t, bool) for t in types):
            return torch.tensor(values, dtype=torch.int64)  # raises outside int64
        if all(issubclass(t, (float, np.floating)) for t in types):
            return torch.tensor(values, dtype=torch.float32)
        if len(types) == 1 and issubclass(next(iter(types)), (Tensor, np.ndarray)):
            dtypes = set(map(_dtype_of, values))
            if len(dtypes) != 1:
                return None
            if issubclass(types.pop(), np.ndarray):
                if _torch_dtype(dtypes.pop()) is None:
                    return None
                y = _from_numpy(np.stack(values))
            else:
                y = torch.stack(values).as_subclass(Tensor)
            if y.is_floating_point():
                return y
            if y.ndim == 1 and y.dtype not in (torch.bool, torch.uint64) and not y.is_complex():
                return y.to(torch.int64)
    except (RuntimeError, TypeError, ValueError, OverflowError):
        pass
    return None


def _class_index(value: int, index: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"sample {index}'s target {value} is outside the int64 range that class indices must fit")
    return value


def _target_kind(value: Any, index: int) -> tuple[str, Any]:
    """Classify one target as ``("index", int)`` or ``("float", Tensor)``, or raise."""
    original = value
    if _is_mask(value):
        raise TypeError(
            f"sample {index}'s target is a tv_tensors.Mask of shape {tuple(value.shape)}; pass "
            "MixupCollate(..., dense_targets=True) to mix segmentation masks with their images, pixel for pixel"
        )
    if _is_tv_tensor(value, "BoundingBoxes"):
        raise TypeError(
            f"sample {index}'s target is a tv_tensors.BoundingBoxes of shape {tuple(value.shape)}; {_BOXES_HINT}"
        )
    if isinstance(value, Mapping) and "boxes" in value:
        raise TypeError(f"sample {index}'s target is a detection dict (keys {sorted(map(str, value))}); {_BOXES_HINT}")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"sample {index}'s target is a bool; use an int class index or a float tensor")
    if isinstance(value, (int, np.integer)):
        return "index", _class_index(int(value), index)
    if isinstance(value, (float, np.floating)):
        return "float", torch.tensor(float(value), dtype=torch.float32)
    if isinstance(value, np.ndarray) and _torch_dtype(value.dtype) is not None:
        value = _from_numpy(value)
    if isinstance(value, Tensor):
        value = value.as_subclass(Tensor).detach()
        if value.is_floating_point():
            return "float", value
        if value.dtype != torch.bool and not value.is_complex() and value.ndim == 0:
            return "index", _class_index(int(value), index)
    if _is_mask(original) or (isinstance(value, Tensor) and value.ndim >= 2):
        raise TypeError(
            f"sample {index}'s target is a {_describe(original)}, a segmentation mask or per-pixel map; "
            "pass MixupCollate(..., dense_targets=True) to mix it with the image, pixel for pixel"
        )
    raise TypeError(
        f"sample {index}'s target is a {_describe(original)}; targets must be class indices "
        "(int or 0-d integer tensor) or float tensors (one-hot, multi-hot, regression)"
    )


def _stack_targets_checked(values: Sequence[Any]) -> Tensor:
    """Classify the targets one by one, raising for the first that does not fit sample 0's, then stack them."""
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


# Dense targets (dense_targets=True): one mask or map per sample, aligned with the input's (H, W).


def _dense_kinds(size: tuple[int, ...]) -> str:
    """The dense targets a batch takes: shaped like the dimensions CutMix cuts (``(H, W)`` for images)."""
    dims = "(H, W)" if len(size) == 2 else str(size).replace(",)", ")")
    return f"an integer {dims} mask or a float {dims} or (K, {dims[1:]} map"


def _dense_fits(dtype: torch.dtype, shape: tuple[int, ...], size: tuple[int, ...]) -> bool:
    if dtype == torch.bool or dtype == torch.uint64 or dtype.is_complex:
        return False
    k = len(size)
    ndims = (k, k + 1) if dtype.is_floating_point else (k,)
    return len(shape) in ndims and tuple(shape[-k:]) == size


def _dense_target(value: Any, index: int, size: tuple[int, ...], dims: tuple[int, ...]) -> Tensor:
    """One sample's mask or map as a plain CPU tensor, or an error naming the sample and the shapes."""
    original = value
    if isinstance(value, np.ndarray) and _torch_dtype(value.dtype) is not None:
        value = _from_numpy(value)
    if isinstance(value, Tensor) and value.dtype == torch.uint64:
        raise TypeError(
            f"sample {index}'s target is a uint64 mask of shape {tuple(value.shape)}; uint64 masks are not "
            "supported: convert them to int64 (or uint8) in the dataset, e.g. mask.astype(np.int64)"
        )
    if not isinstance(value, Tensor) or value.dtype == torch.bool or value.is_complex():
        raise TypeError(
            f"sample {index}'s target is a {_describe(original)}; dense_targets=True needs {_dense_kinds(size)}"
        )
    value = value.as_subclass(Tensor).detach()
    if not _dense_fits(value.dtype, tuple(value.shape), size):
        where = "last two dimensions are" if dims == (-2, -1) else f"dimensions cutmix_dims={dims} are"
        raise ValueError(
            f"sample {index}'s target has shape {tuple(value.shape)} and dtype {value.dtype}, but its input's {where} "
            f"{size}: dense_targets=True needs {_dense_kinds(size)} with those sizes"
        )
    if value.device.type != "cpu":
        raise ValueError(f"sample {index}'s target is on {value.device}; datasets should return CPU tensors")
    return value


def _stack_dense_targets(
    values: Sequence[Any], size: tuple[int, ...], dims: tuple[int, ...], *, shared: bool, pinned: bool
) -> Tensor:
    """``(B, [K,] *size)`` masks or maps in their own dtype (``uint8`` masks cross the process boundary as bytes).

    ``size``: the sizes of the input dimensions ``dims`` that CutMix cuts (``(H, W)`` for images).
    """
    y = _stack_inputs_fast(values, shared=shared, pinned=pinned)
    if y is not None and _dense_fits(y.dtype, tuple(y.shape[1:]), size):
        return y
    tensors = [_dense_target(v, i, size, dims) for i, v in enumerate(values)]
    first = _alike(tensors, "target", "a batch needs one kind of dense target")
    return torch.stack(tensors, out=_empty((len(tensors), *first.shape), first.dtype, shared=shared, pinned=pinned))


# Extra fields.


def _signature(value: Any) -> tuple[Any, ...]:
    """What ``default_collate`` needs to agree across samples, one level deep: type, shape, dtype, length, keys."""
    shape = tuple(value.shape) if isinstance(value, (Tensor, np.ndarray)) else None
    dtype = getattr(value, "dtype", None)
    keys = frozenset(value) if isinstance(value, Mapping) else None
    length = len(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else None
    return type(value), shape, dtype, keys, length


def _collate_extra(key: Any, values: list[Any]) -> Any:
    """``default_collate`` of one extra field, with an error naming the field and the first differing sample."""
    try:
        return default_collate(values)
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError) as err:
        first = _signature(values[0])
        culprit = next((i for i, v in enumerate(values) if _signature(v) != first), None)
        if culprit is None:
            error = TypeError if isinstance(err, TypeError) else ValueError
            where = f"sample 0's value is a {_describe(values[0])}"
        else:
            error = TypeError if type(values[culprit]) is not type(values[0]) else ValueError
            where = f"sample {culprit}'s value is a {_describe(values[culprit])}, sample 0's a {_describe(values[0])}"
        raise error(f"extra field {key!r} could not be collated ({where}): {err}") from err


def stack_samples(
    samples: Sequence[Any],
    *,
    input_key: str = "image",
    target_key: str = "label",
    shared: bool = False,
    pinned: bool = False,
    dense: bool = False,
    cut_dims: tuple[int, ...] = (-2, -1),
    boxes: bool = False,
    box_keys: Sequence[str] | None = None,
    box_fields: Sequence[str] = (),
    measure_range: bool = False,
    keep: bool | tuple[Any, ...] = True,
) -> Stacked:
    """Stack ``samples`` (``(input, target, ...)`` tuples or dicts) into one ``Stacked`` batch.

    Inputs (tensors or numpy arrays of one shape and dtype, any strides and byte order) are written,
    detached, into one contiguous ``(B, *S)`` buffer: in shared memory when ``shared`` (inside a
    DataLoader worker), page-locked when ``pinned`` (the main process, before a copy to a CUDA device).

    Targets are class indices (Python or numpy ints, 0-d integer tensors or arrays), stacked into a
    ``(B,)`` int64 tensor with their values unchanged: negative ones (an ``ignore_index`` such as -1)
    pass through for the loss to interpret, and values outside int64 raise. Or they are float targets:
    Python and numpy float scalars become ``(B,)`` float32, float tensors and arrays ``(B, *K)`` keep
    their dtype. Bool targets are refused (ambiguous between a class and a float).

    ``dense``: each target is a mask or map aligned with its input's dimensions ``cut_dims`` (by default
    the last two, ``(H, W)``): integer ``(H, W)`` class-index masks (any integer dtype, kept as they are:
    ``uint8`` masks stay bytes), or float ``(H, W)`` / ``(K, H, W)`` maps; stacked into ``(B, [K,] H, W)``.

    ``boxes``: each target is a detection dict (``boxes``, ``labels``, ...), packed by
    [`pack_targets`][mixup_collate.detection.pack_targets] (one tensor per per-box field and the per-sample counts);
    ``box_keys`` keeps only those keys of each target (``None``: all); ``box_fields`` names per-box fields
    beyond [`PER_BOX_KEYS`][mixup_collate.detection.PER_BOX_KEYS].

    ``keep``: the other fields to keep in ``extras``: all (``True``), none (``False``) or those named (each
    must be a field of the samples).

    ``measure_range``: record the ``(min, max)`` of float inputs (for a check of the normalisation, done
    here, in the worker, rather than in the main process).

    Raises ``TypeError``, ``ValueError`` or ``KeyError`` naming the first sample (and field) at fault.
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty batch (got 0 samples)")
    with torch.no_grad():  # samples are data: inputs that require grad are stacked detached
        columns = _columns_fast(samples, input_key, target_key)
        inputs, targets, extras = columns or _columns_checked(samples, input_key, target_key)
        x = _stack_inputs_fast(inputs, shared=shared, pinned=pinned)
        if x is None:
            if boxes:
                check_sizes([_as_input_tensor(v, i) for i, v in enumerate(inputs)])
            x = _stack_inputs_checked(inputs, shared=shared, pinned=pinned)
        if boxes:
            if x.ndim < 3:
                raise ValueError(f"box_targets=True needs images (..., H, W), got samples {tuple(x.shape[1:])}")
            y = pack_targets(targets, tuple(x.shape[-2:]), keys=box_keys, per_box_keys=box_fields)
        elif dense:
            if x.ndim - 1 < -cut_dims[0]:
                raise ValueError(
                    f"dense_targets=True needs inputs with the dimensions cutmix_dims={cut_dims} cuts, got samples "
                    f"of shape {tuple(x.shape[1:])}"
                )
            size = tuple(x.shape[d] for d in cut_dims)
            y = _stack_dense_targets(targets, size, cut_dims, shared=shared, pinned=pinned)
        else:
            y = _stack_targets_fast(targets)
            if y is None:
                y = _stack_targets_checked(targets)
        if keep is not True and keep is not False:
            absent = [k for k in keep if k not in extras]
            if absent:
                raise KeyError(
                    f"extras names the field {absent[0]!r}, which the samples do not have; their other fields are "
                    f"{list(extras)} (the input and the target are returned in any case)"
                )
        extras = {k: _collate_extra(k, v) for k, v in extras.items() if keep is True or (keep and k in keep)}
        value_range = None
        if measure_range and x.is_floating_point() and x.numel():
            low, high = torch.aminmax(x)
            value_range = (float(low), float(high))
    return Stacked(x=x, y=y, extras=extras, value_range=value_range)
