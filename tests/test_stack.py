"""stack_samples: one contiguous CPU batch from tuples or dicts, and errors naming the sample at fault."""

from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image
from support import CUDA
from torchvision import tv_tensors

from mixup_collate import stack as stack_module
from mixup_collate.stack import stack_samples


def batch_of(inputs, targets):
    return list(zip(inputs, targets))


# Fields: tuples, lists and dicts.


def test_tuples_of_tensors_and_int_targets():
    samples = [(torch.full((2, 3), float(i)), i) for i in range(5)]
    s = stack_samples(samples)
    assert s.x.shape == (5, 2, 3) and s.x.is_contiguous()
    assert torch.equal(s.x[:, 0, 0], torch.arange(5.0))
    assert s.y.dtype == torch.int64 and s.y.tolist() == [0, 1, 2, 3, 4]
    assert s.extras == {}


WELL_FORMED = {
    "tensors and ints": lambda x, i: (x, i),
    "tv_tensors and floats": lambda x, i: (tv_tensors.Image(x), float(i)),
    "arrays and numpy ints": lambda x, i: (x.numpy(), np.int64(i)),
    "tensors and one-hot tensors": lambda x, i: (x, torch.nn.functional.one_hot(torch.tensor(i), 6).float()),
    "dicts": lambda x, i: {"image": x, "label": i, "id": i},
}


@pytest.mark.parametrize("kind", WELL_FORMED)
def test_a_well_formed_batch_skips_the_per_sample_checks(monkeypatch, kind):
    def per_sample_check(*args):
        raise AssertionError("the happy path must not check samples one by one")

    for name in ("_split", "_as_input_tensor", "_target_kind"):
        monkeypatch.setattr(stack_module, name, per_sample_check)
    xs = torch.rand(6, 3, 4, 4)
    s = stack_samples([WELL_FORMED[kind](xs[i].clone(), i) for i in range(6)])
    assert type(s.x) is torch.Tensor and torch.equal(s.x, xs)
    assert torch.equal(s.y.argmax(1) if s.y.ndim == 2 else s.y, torch.arange(6, dtype=s.y.dtype))


def test_list_samples_and_namedtuple_samples():
    s = stack_samples([[torch.rand(2), 0], [torch.rand(2), 1]])
    assert s.x.shape == (2, 2) and s.y.tolist() == [0, 1]
    Sample = namedtuple("Sample", "image label")
    s = stack_samples([Sample(torch.rand(2), 4), Sample(torch.rand(2), 5)])
    assert s.y.tolist() == [4, 5]


def test_dict_samples_with_configurable_keys_and_extras():
    samples = [{"img": torch.rand(3), "cls": i, "id": f"s{i}", "meta": torch.tensor([i, i])} for i in range(3)]
    s = stack_samples(samples, input_key="img", target_key="cls")
    assert s.y.tolist() == [0, 1, 2]
    assert s.extras["id"] == ["s0", "s1", "s2"]
    assert torch.equal(s.extras["meta"], torch.tensor([[0, 0], [1, 1], [2, 2]]))


def test_dict_samples_may_list_their_keys_in_any_order():
    samples = [
        {"image": torch.zeros(2), "label": 0, "id": 10, "w": 0.5},
        {"w": 1.5, "id": 11, "label": 1, "image": torch.ones(2)},
    ]
    s = stack_samples(samples)
    assert s.x.tolist() == [[0.0, 0.0], [1.0, 1.0]] and s.y.tolist() == [0, 1]
    assert list(s.extras) == ["id", "w"]
    assert s.extras["id"].tolist() == [10, 11] and s.extras["w"].tolist() == [0.5, 1.5]


def test_dict_samples_with_another_key_set_name_the_sample_and_the_keys():
    samples = [{"image": torch.rand(2), "label": i, "id": i} for i in range(3)]
    samples[2] = {"image": torch.rand(2), "label": 2, "idx": 2}
    with pytest.raises(ValueError, match=r"sample 2 has extra fields \['idx'\].*lacks \['id'\] and adds \['idx'\]"):
        stack_samples(samples)


def test_tuple_extras_are_keyed_by_position():
    s = stack_samples([(torch.rand(2), 0, 10, "a"), (torch.rand(2), 1, 11, "b")])
    assert s.extras[2].tolist() == [10, 11] and s.extras[3] == ["a", "b"]


def test_malformed_samples():
    with pytest.raises(TypeError, match=r"sample 0 is a Tensor .*expects \(input, target, ...\)"):
        stack_samples([torch.rand(3)])
    with pytest.raises(KeyError, match="sample 0 has no key 'image'.*input_key"):
        stack_samples([{"img": torch.rand(2), "label": 0}])
    with pytest.raises(TypeError, match="sample 0's input is a list"):
        stack_samples([([1, 2], 0)])
    with pytest.raises(ValueError, match=r"sample 1 has extra fields \[\] but sample 0 has \[2\]"):
        stack_samples([(torch.rand(2), 0, "a"), (torch.rand(2), 1)])


def test_a_batch_of_one():
    s = stack_samples([(torch.rand(4), 3)])
    assert s.x.shape == (1, 4) and s.y.tolist() == [3]


def test_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        stack_samples([])


# Inputs.


def test_numpy_inputs_tv_tensor_images_and_zero_d_targets():
    s = stack_samples([(np.ones((3, 4, 4), np.uint8), torch.tensor(7)), (np.zeros((3, 4, 4), np.uint8), np.int64(2))])
    assert s.x.dtype == torch.uint8 and s.y.tolist() == [7, 2]
    images = [(tv_tensors.Image(torch.rand(3, 4, 4)), 1) for _ in range(3)]
    s = stack_samples(images)
    assert type(s.x) is torch.Tensor and s.x.shape == (3, 3, 4, 4)


def test_inputs_that_require_grad_are_stacked_detached():
    xs = torch.rand(3, 4, requires_grad=True)
    for samples in ([(xs[i], i) for i in range(3)], [(xs[0], 0), (xs[1].detach(), 1)]):
        s = stack_samples(samples, shared=True)
        assert not s.x.requires_grad and torch.equal(s.x, xs[: len(samples)].detach())


def test_float_targets_that_require_grad_are_stacked_detached():
    s = stack_samples([(torch.rand(2), torch.rand(3, requires_grad=True)) for _ in range(2)])
    assert s.y.shape == (2, 3) and not s.y.requires_grad


@pytest.mark.parametrize("order", [">", "mixed"])
def test_big_endian_arrays_are_converted_to_native_order(order):
    arrays = [(np.arange(6).reshape(2, 3) + i).astype(">f4") for i in range(3)]
    if order == "mixed":
        arrays[1] = arrays[1].astype("<f4")
    assert arrays[0].dtype.byteorder == ">"
    s = stack_samples(batch_of(arrays, range(3)))
    assert s.x.dtype == torch.float32
    assert torch.equal(s.x, torch.tensor(np.stack(arrays).astype("=f4")))


@pytest.mark.parametrize("view", ["transposed", "reversed"])
def test_non_contiguous_arrays(view):
    base = [np.arange(24, dtype=np.float32).reshape(2, 3, 4) * i for i in range(3)]
    arrays = [a.transpose(2, 0, 1) if view == "transposed" else a[:, ::-1, ::2] for a in base]
    assert not arrays[0].flags.c_contiguous
    expected = torch.tensor(np.stack(arrays))
    assert torch.equal(stack_samples(batch_of(arrays, range(3))).x, expected)
    mixed = [torch.tensor(arrays[0].copy()), *arrays[1:]]  # the sample-by-sample path
    assert torch.equal(stack_samples(batch_of(mixed, range(3))).x, expected)


def test_zero_d_array_inputs_stack_to_one_value_per_sample():
    s = stack_samples([(np.array(1.5), 0), (np.array(2.5), 1)])
    assert s.x.shape == (2,) and s.x.tolist() == [1.5, 2.5]


def test_object_arrays_name_the_sample():
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.zeros(2), np.zeros(3)]
    with pytest.raises(TypeError, match="sample 1's input is a numpy array of dtype object"):
        stack_samples([(np.zeros(2), 0), (ragged, 1)])
    with pytest.raises(TypeError, match="sample 0's input is a numpy array of dtype object"):
        stack_samples([(ragged, 0), (ragged, 1)])


def test_different_shapes_name_the_sample():
    samples = [(torch.rand(3, 8, 8), 0), (torch.rand(3, 8, 8), 1), (torch.rand(3, 7, 8), 2)]
    with pytest.raises(ValueError, match=r"sample 2's input has shape \(3, 7, 8\).*sample 0's has shape \(3, 8, 8\)"):
        stack_samples(samples)
    arrays = [(np.zeros((3, 8, 8)), 0), (np.zeros((3, 8, 7)), 1)]
    with pytest.raises(ValueError, match=r"sample 1's input has shape \(3, 8, 7\)"):
        stack_samples(arrays)


def test_different_dtypes_name_the_sample():
    with pytest.raises(ValueError, match=r"sample 1's input .* dtype torch.float64"):
        stack_samples([(torch.rand(2), 0), (torch.rand(2, dtype=torch.float64), 1)])
    with pytest.raises(ValueError, match=r"sample 2's input .* dtype torch.float16"):
        stack_samples([(np.zeros(2, np.float32), 0), (np.zeros(2, np.float32), 1), (np.zeros(2, np.float16), 2)])


def test_inputs_off_the_cpu_and_sparse_inputs_name_the_sample():
    with pytest.raises(ValueError, match="sample 1's input is on meta"):
        stack_samples([(torch.rand(2), 0), (torch.empty(2, device="meta"), 1)])
    with pytest.raises(ValueError, match=r"sample 1's input is a torch.sparse_coo tensor.*to_dense"):
        stack_samples([(torch.rand(2), 0), (torch.rand(2).to_sparse(), 1)])


def test_pil_images_get_a_how_to_fix():
    with pytest.raises(TypeError, match="sample 1's input is a PIL image.*PILToTensor"):
        stack_samples([(torch.zeros(3, 2, 2, dtype=torch.uint8), 0), (Image.new("RGB", (2, 2)), 1)])


# Buffers.

INPUT_KINDS = {
    "tensors": lambda a: torch.from_numpy(a),
    "tv_tensors": lambda a: tv_tensors.Image(torch.from_numpy(a)),
    "arrays": lambda a: a,
    "HWC memory": lambda a: torch.from_numpy(a).permute(1, 2, 0).contiguous().permute(2, 0, 1),
}


@pytest.mark.parametrize("kind", [*INPUT_KINDS, "tensors and arrays"])
@pytest.mark.parametrize("shared", [False, True])
def test_x_is_one_plain_contiguous_buffer_shared_when_asked(kind, shared):
    arrays = [np.full((3, 2, 2), i, dtype=np.float32) for i in range(4)]
    if kind == "tensors and arrays":
        inputs = [torch.from_numpy(arrays[0]), *arrays[1:]]
    else:
        inputs = [INPUT_KINDS[kind](a) for a in arrays]
    s = stack_samples(batch_of(inputs, range(4)), shared=shared)
    assert type(s.x) is torch.Tensor and s.x.is_contiguous() and s.x.is_shared() == shared
    assert torch.equal(s.x, torch.tensor(np.stack(arrays)))


@CUDA
@pytest.mark.cuda
def test_pinned_buffer():
    s = stack_samples([(torch.rand(3), 0), (torch.rand(3), 1)], pinned=True)
    assert s.x.is_pinned() and s.x.device.type == "cpu"


# Targets.


def test_int_targets_become_one_int64_tensor_with_negative_values_unchanged():
    s = stack_samples(batch_of([torch.rand(2)] * 4, [3, -1, 0, -100]))
    assert s.y.dtype == torch.int64 and s.y.tolist() == [3, -1, 0, -100]


@pytest.mark.parametrize(
    "targets",
    [
        [np.int64(3), np.int32(-1), np.uint8(7)],
        [np.array(3), np.array(-1, dtype=np.int16), np.array(7, dtype=np.uint8)],
        [torch.tensor(3), torch.tensor(-1), torch.tensor(7)],
        [torch.tensor(3, dtype=torch.uint8), torch.tensor(1, dtype=torch.uint8), torch.tensor(7, dtype=torch.uint8)],
        [3, np.int64(-1), torch.tensor(7)],
    ],
    ids=["numpy scalars", "0-d arrays", "0-d tensors", "0-d uint8 tensors", "mixed"],
)
def test_integer_targets_of_every_kind_are_class_indices(targets):
    s = stack_samples(batch_of([torch.rand(2)] * 3, targets))
    assert s.y.dtype == torch.int64 and s.y.shape == (3,)
    assert s.y.tolist() == [int(t) for t in targets]


def test_float_targets_one_hot_and_regression():
    s = stack_samples([(torch.rand(2), torch.tensor([0.0, 1.0])), (torch.rand(2), torch.tensor([1.0, 0.0]))])
    assert s.y.dtype == torch.float32 and s.y.shape == (2, 2)
    s = stack_samples([(torch.rand(2), 0.5), (torch.rand(2), 1.5)])
    assert s.y.dtype == torch.float32 and s.y.tolist() == [0.5, 1.5]


@pytest.mark.parametrize(
    "targets, dtype",
    [
        ([np.float32(0.5), np.float32(1.5)], torch.float32),
        ([np.float64(0.5), np.float64(1.5)], torch.float32),
        ([np.float32(0.5), 1.5], torch.float32),
        ([np.array(0.5), np.array(1.5)], torch.float64),
        ([np.array(0.5, np.float32), np.array(1.5, np.float32)], torch.float32),
        ([np.array(0.5, ">f4"), np.array(1.5, ">f4")], torch.float32),
    ],
    ids=["np.float32", "np.float64", "np.float32 and float", "0-d float64 arrays", "0-d float32 arrays", "big-endian"],
)
def test_numpy_float_scalars_are_float_targets_of_shape_b(targets, dtype):
    s = stack_samples(batch_of([torch.rand(2)] * 2, targets))
    assert s.y.shape == (2,)  # as default_collate gives, not (2, 1)
    assert s.y.dtype == dtype and s.y.tolist() == [0.5, 1.5]


def test_float_arrays_are_float_targets_of_their_shape():
    targets = [np.array([0.0, 1.0], np.float32), np.array([1.0, 0.0], np.float32)]
    s = stack_samples(batch_of([torch.rand(2)] * 2, targets))
    assert s.y.dtype == torch.float32 and torch.equal(s.y, torch.tensor(np.stack(targets)))


@pytest.mark.parametrize("big", [2**70, -(2**63) - 1, np.uint64(2**64 - 1)], ids=["2**70", "-2**63-1", "uint64 max"])
def test_targets_outside_int64_name_the_sample(big):
    with pytest.raises(ValueError, match=r"sample 1's target \d+|sample 1's target -\d+ is outside the int64 range"):
        stack_samples(batch_of([torch.rand(2)] * 3, [0, big, 2]))


@pytest.mark.parametrize(
    "target, message",
    [
        ("cat", "sample 1's target is a str"),
        (None, "sample 1's target is a NoneType"),
        (True, "sample 1's target is a bool"),
        (np.bool_(True), "sample 1's target is a bool"),
        (torch.tensor([1, 2]), r"sample 1's target is a Tensor of dtype torch.int64 and shape \(2,\)"),
        (torch.tensor(True), "sample 1's target is a Tensor of dtype torch.bool"),
        (np.array(True), "sample 1's target is a ndarray of dtype bool"),
        (np.array("cat"), "sample 1's target is a ndarray of dtype <U3"),
    ],
)
def test_unsupported_targets_name_the_sample(target, message):
    with pytest.raises(TypeError, match=message):
        stack_samples([(torch.rand(2), 0), (torch.rand(2), target)])


def test_bounding_boxes_and_detection_dicts_point_to_box_targets():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[1.0, 1, 3, 3]]), format="XYXY", canvas_size=(4, 4))
    with pytest.raises(TypeError, match=r"sample 0's target is a tv_tensors.BoundingBoxes.*box_targets=True"):
        stack_samples([(torch.rand(3, 4, 4), boxes), (torch.rand(3, 4, 4), boxes.clone())])
    detection = {"boxes": torch.tensor([[1.0, 1, 3, 3]]), "labels": torch.tensor([1])}
    with pytest.raises(TypeError, match=r"sample 0's target is a detection dict.*box_targets=True"):
        stack_samples([(torch.rand(3, 4, 4), detection), (torch.rand(3, 4, 4), detection)])


def test_a_batch_of_bool_targets_is_refused():
    with pytest.raises(TypeError, match="sample 0's target is a bool"):
        stack_samples([(torch.rand(2), True), (torch.rand(2), False)])


def test_mixed_target_kinds_and_shapes():
    with pytest.raises(TypeError, match="sample 1's target is a float target but sample 0's is a class index"):
        stack_samples([(torch.rand(2), 0), (torch.rand(2), torch.tensor([1.0, 0.0]))])
    with pytest.raises(ValueError, match=r"sample 1's target has shape \(3,\)"):
        stack_samples([(torch.rand(2), torch.rand(2)), (torch.rand(2), torch.rand(3))])
    with pytest.raises(ValueError, match=r"sample 2's target has shape \(\) and dtype torch.float64"):
        stack_samples(
            batch_of([torch.rand(2)] * 3, [np.array(0.5, np.float32), np.array(1.5, np.float32), np.array(2.5)])
        )


# Extra fields.


def test_an_extra_field_that_differs_names_the_field_and_the_sample():
    samples = [{"image": torch.rand(2), "label": i, "box": torch.zeros(4)} for i in range(4)]
    samples[2]["box"] = torch.zeros(5)
    with pytest.raises(
        ValueError,
        match=r"extra field 'box' .*sample 2's value is a Tensor of dtype torch.float32 and shape \(5,\)",
    ):
        stack_samples(samples)
    with pytest.raises(TypeError, match="extra field 2 .*sample 1's value is a str, sample 0's a int"):
        stack_samples([(torch.rand(2), 0, 7), (torch.rand(2), 1, "seven")])


def test_an_extra_field_default_collate_cannot_handle_names_the_field():
    with pytest.raises(TypeError, match="extra field 'meta' could not be collated .*sample 0's value is a object"):
        stack_samples([{"image": torch.rand(2), "label": 0, "meta": object()}] * 2)


def test_numpy_arrays_with_a_negative_stride_on_a_size_one_axis_take_the_per_sample_path():
    # numpy calls such an array C-contiguous; torch.from_numpy refuses its negative stride.
    flipped = np.random.default_rng(0).random((1, 4, 4), dtype=np.float32)[::-1]
    assert flipped.flags.c_contiguous and flipped.strides[0] < 0
    target = np.random.default_rng(1).random((1, 3), dtype=np.float32)[::-1]
    samples = [(flipped, target), (torch.from_numpy(flipped.copy()), torch.from_numpy(target.copy()))]
    stacked = stack_samples(samples)  # mixed types: the fast paths decline
    assert torch.equal(stacked.x[0], torch.from_numpy(flipped.copy())) and torch.equal(stacked.x[0], stacked.x[1])
    assert torch.equal(stacked.y[0], stacked.y[1])
