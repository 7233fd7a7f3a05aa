"""The torchdata, fastai and Hugging Face ``run_image_classification.py`` recipes: the examples train as the
recipe pages print them, each diff's kept and added lines are in its example in order, and the counts in the
pages' headings are the diffs' own."""

import re

import pytest
from integration_support import EXAMPLES, load_example

from mixup_collate import mixup_cross_entropy

pytestmark = [pytest.mark.usefixtures("kept_global_state"), pytest.mark.slow]

RECIPES = EXAMPLES.parent / "docs" / "recipes"
# (page, the heading that names the example and its count, the example the diff is checked against)
DIFFS = [
    ("torchdata.md", "# torchdata", "torchdata_example.py"),
    ("fastai.md", "# fastai", "fastai_example.py"),
    ("transformers.md", "## Hugging Face's `run_image_classification.py`", "transformers_image_classification.py"),
]


def section(page, heading):
    text = (RECIPES / page).read_text()
    start = text.index(heading)
    rest = text[start:]
    end = rest.find("\n## ", 1)
    return rest if end < 0 else rest[:end]


def code(line):
    """A line without its indentation and trailing comment."""
    return re.sub(r"\s+#.*$", "", line).strip()


class TestThePagesPrintTheExamples:
    @pytest.mark.parametrize(("page", "heading", "example"), DIFFS)
    def test_the_heading_counts_the_diffs_changed_lines(self, page, heading, example):
        text = section(page, heading)
        (block,) = re.findall(r"```diff\n(.*?)\n```", text, flags=re.S)
        lines = block.splitlines()
        assert all(line[:1] in " +-" for line in lines)
        added, removed = sum(line[:1] == "+" for line in lines), sum(line[:1] == "-" for line in lines)
        assert f"`examples/{example}`; {added + removed} lines: +{added} -{removed})" in text.splitlines()[0]

    @pytest.mark.parametrize(("page", "heading", "example"), DIFFS)
    def test_the_example_has_the_diffs_kept_and_added_lines_in_order(self, page, heading, example):
        (block,) = re.findall(r"```diff\n(.*?)\n```", section(page, heading), flags=re.S)
        wanted = [code(line[1:]) for line in block.splitlines() if line[:1] in " +"]
        lines = [code(line) for line in (EXAMPLES / example).read_text().splitlines()]
        position = 0
        for line in wanted:
            assert line in lines[position:], f"{example} lacks, after line {position}: {line}"
            position = lines.index(line, position) + 1


class TestTorchdata:
    """A run stopped in the middle of an epoch and resumed draws what the uninterrupted run drew."""

    @pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
    @pytest.mark.parametrize("stop", [5, 21])  # inside the first epoch, inside the second
    def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(self, tmp_path, workers, stop):
        pytest.importorskip("torchdata")
        example = load_example("torchdata_example")
        base = ["--epochs", "2", "--workers", str(workers)]
        full = example.main(base)["steps"]
        checkpoint = str(tmp_path / "ckpt.pt")
        first = example.main([*base, "--stop-after", str(stop), "--out", checkpoint])["steps"]
        rest = example.main([*base, "--resume", checkpoint])["steps"]
        assert len(full) == 32 and first + rest == full, "the same draws, targets and losses, step for step"

    def test_the_example_learns(self):
        pytest.importorskip("torchdata")
        assert load_example("torchdata_example").main(["--epochs", "3"])["accuracy"] >= 0.9


class TestFastai:
    def test_the_loss_gets_the_mixed_triple_and_the_example_learns(self):
        pytest.importorskip("fastai")
        example = load_example("fastai_example")
        learner = example.build(example.get_args_parser().parse_args(["--epochs", "2"]))
        seen = []

        def recorded(logits, *targets):
            seen.append((learner.training, len(targets), targets[-1].detach().clone()))
            return mixup_cross_entropy(logits, *targets)

        learner.loss_func = recorded
        with learner.no_logging():
            learner.fit(3, cbs=[])
        train = [lam for training, n, lam in seen if training]
        assert {n for _, n, _ in seen} == {3}, "y_a, y_b and lam reach the loss"
        assert any(bool((lam < 1).any()) for lam in train), "training batches are mixed"
        assert all(bool((lam == 1).all()) for training, _, lam in seen if not training), "validation is not"
        assert learner.recorder.values[-1][2] >= 0.9


class TestRunImageClassification:
    def test_the_script_trains_with_the_change(self, tmp_path):
        pytest.importorskip("transformers")
        trainer = load_example("transformers_image_classification").main(["--epochs", "1", "--out", str(tmp_path)])
        assert trainer.state.global_step == 12 and "eval_accuracy" in trainer.evaluate()

    def test_without_extras_false_the_raw_image_column_is_named(self, tmp_path, monkeypatch):
        pytest.importorskip("transformers")
        example = load_example("transformers_image_classification")
        real = example.MixupCollate
        monkeypatch.setattr(example, "MixupCollate", lambda **kw: real(**{**kw, "extras": True}))
        with pytest.raises(TypeError, match="extra field 'image' could not be collated"):
            example.main(["--epochs", "1", "--out", str(tmp_path)])
