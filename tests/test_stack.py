"""stack_samples: one contiguous CPU batch from tuples or dicts, and errors naming the sample at fault."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from mixup_collate.stack import stack_samples


def test_tuples_of_tensors_and_int_targets():
    samples = [(torch.full((2, 3), float(i)), i) for i in range(5)]
    s = stack_samples(samples)
    assert s.x.shape == (5, 2, 3) and s.x.is_contiguous()
    assert torch.equal(s.x[:, 0, 0], torch.arange(5.0))
    assert s.y.dtype == torch.int64 and s.y.tolist() == [0, 1, 2, 3, 4]
    assert s.extras == {}


def test_numpy_inputs_tv_tensor_images_and_zero_d_targets():
    s = stack_samples([(np.ones((3, 4, 4), np.uint8), torch.tensor(7)), (np.zeros((3, 4, 4), np.uint8), np.int64(2))])
    assert s.x.dtype == torch.uint8 and s.y.tolist() == [7, 2]
    images = [(tv_tensors.Image(torch.rand(3, 4, 4)), 1) for _ in range(3)]
    s = stack_samples(images)
    assert type(s.x) is torch.Tensor and s.x.shape == (3, 3, 4, 4)


def test_dict_samples_with_configurable_keys_and_extras():
    samples = [{"img": torch.rand(3), "cls": i, "id": f"s{i}", "meta": torch.tensor([i, i])} for i in range(3)]
    s = stack_samples(samples, input_key="img", target_key="cls")
    assert s.y.tolist() == [0, 1, 2]
    assert s.extras["id"] == ["s0", "s1", "s2"]
    assert torch.equal(s.extras["meta"], torch.tensor([[0, 0], [1, 1], [2, 2]]))


def test_tuple_extras_are_keyed_by_position():
    s = stack_samples([(torch.rand(2), 0, 10, "a"), (torch.rand(2), 1, 11, "b")])
    assert s.extras[2].tolist() == [10, 11] and s.extras[3] == ["a", "b"]


def test_float_targets_one_hot_and_regression():
    s = stack_samples([(torch.rand(2), torch.tensor([0.0, 1.0])), (torch.rand(2), torch.tensor([1.0, 0.0]))])
    assert s.y.dtype == torch.float32 and s.y.shape == (2, 2)
    s = stack_samples([(torch.rand(2), 0.5), (torch.rand(2), 1.5)])
    assert s.y.tolist() == [0.5, 1.5]


def test_shared_and_pinned_buffers():
    s = stack_samples([(torch.rand(3), 0), (torch.rand(3), 1)], shared=True)
    assert s.x.is_shared()


def test_a_batch_of_one():
    s = stack_samples([(torch.rand(4), 3)])
    assert s.x.shape == (1, 4) and s.y.tolist() == [3]


def test_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        stack_samples([])


def test_different_shapes_name_the_sample():
    samples = [(torch.rand(3, 8, 8), 0), (torch.rand(3, 8, 8), 1), (torch.rand(3, 7, 8), 2)]
    with pytest.raises(ValueError, match=r"sample 2's input has shape \(3, 7, 8\).*sample 0's has shape \(3, 8, 8\)"):
        stack_samples(samples)


def test_different_dtypes_name_the_sample():
    with pytest.raises(ValueError, match=r"sample 1's input .* dtype torch.float64"):
        stack_samples([(torch.rand(2), 0), (torch.rand(2, dtype=torch.float64), 1)])


def test_pil_images_get_a_how_to_fix():
    with pytest.raises(TypeError, match="sample 1's input is a PIL image.*PILToTensor"):
        stack_samples([(torch.zeros(3, 2, 2, dtype=torch.uint8), 0), (Image.new("RGB", (2, 2)), 1)])


@pytest.mark.parametrize(
    "target, message",
    [
        ("cat", "sample 1's target is a str"),
        (None, "sample 1's target is a NoneType"),
        (True, "sample 1's target is a bool"),
        (torch.tensor([1, 2]), r"sample 1's target is a Tensor of dtype torch.int64 and shape \(2,\)"),
        (torch.tensor(True), "sample 1's target is a Tensor of dtype torch.bool"),
    ],
)
def test_unsupported_targets_name_the_sample(target, message):
    with pytest.raises(TypeError, match=message):
        stack_samples([(torch.rand(2), 0), (torch.rand(2), target)])


def test_mixed_target_kinds_and_shapes():
    with pytest.raises(TypeError, match="sample 1's target is a float target but sample 0's is a class index"):
        stack_samples([(torch.rand(2), 0), (torch.rand(2), torch.tensor([1.0, 0.0]))])
    with pytest.raises(ValueError, match=r"sample 1's target has shape \(3,\)"):
        stack_samples([(torch.rand(2), torch.rand(2)), (torch.rand(2), torch.rand(3))])


def test_malformed_samples():
    with pytest.raises(TypeError, match=r"sample 0 is a Tensor .*expects \(input, target, ...\)"):
        stack_samples([torch.rand(3)])
    with pytest.raises(KeyError, match="sample 0 has no key 'image'.*input_key"):
        stack_samples([{"img": torch.rand(2), "label": 0}])
    with pytest.raises(TypeError, match="sample 0's input is a list"):
        stack_samples([([1, 2], 0)])
    with pytest.raises(ValueError, match="sample 1 has extra fields"):
        stack_samples([(torch.rand(2), 0, "a"), (torch.rand(2), 1)])
