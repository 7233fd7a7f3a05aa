"""The front page and the documentation site: the README stays a front page whose links resolve, and the site
builds with ``mkdocs build --strict`` (a broken link, a missing page or a docstring that does not render fails)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 250


def test_every_relative_link_of_the_readme_resolves():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the documentation"
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_docs_speak_of_the_product_not_of_its_development():
    words = r"\b(issue|missed|this release|previous release|CI-class|session)\b"
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    found = [f"{p.relative_to(ROOT)}: {m}" for p in pages for m in re.findall(words, p.read_text(), re.IGNORECASE)]
    assert found == []


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert api.count("MixupCollate") > 5
    text = re.sub(r"<[^>]+>", "", api)
    assert re.findall(r":(?:class|meth|func|mod|data|attr|exc):`?~?[\w.]+", text) == [], "a raw Sphinx role"
    assert set(re.findall(r'id="mixup_collate[\w.]*\.(_\w+)"', api)) <= {"__call__"}, "internals documented"
    assert "Formatting signatures requires" not in done.stderr, "the docs extra needs a formatter"
    assert re.search(r"MixupCollate\(\n    alpha: float = 0.4,\n    \*,\n", text), "signatures formatted"


def test_the_library_docstrings_use_markdown_cross_references_not_sphinx_roles():
    roles = re.compile(r":(?:class|meth|func|mod|data|attr|exc):`")
    found = [f"{p.relative_to(ROOT)}" for p in (ROOT / "mixup_collate").rglob("*.py") if roles.search(p.read_text())]
    assert found == []


# What a reader supplies to each page's ```python blocks, which run in order in one namespace after it, as printed.
# A page whose blocks need nothing from the reader is listed with "".
READER = {
    "README.md": """
import torch
from torch.utils.data import TensorDataset

train_set = TensorDataset(torch.rand(64, 3, 8, 8), torch.arange(64) % 10)
val_set = TensorDataset(torch.rand(32, 3, 8, 8), torch.arange(32) % 10)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10))
model.to("cuda" if torch.cuda.is_available() else "cpu")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
epochs = 2
""",
    "docs/index.md": """
import torch
from torch.utils.data import TensorDataset

train_set = TensorDataset(torch.rand(64, 3, 8, 8), torch.arange(64) % 10)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10))
model.to("cuda" if torch.cuda.is_available() else "cpu")
""",
    "docs/segmentation.md": """
import torch

pairs = [(torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8), torch.randint(0, 4, (16, 16))) for _ in range(16)]
model = torch.nn.Conv2d(3, 4, 3, padding=1).to("cuda" if torch.cuda.is_available() else "cpu")
""",
    "docs/detection.md": """
import torch

dataset = [
    (torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8),
     {"boxes": torch.tensor([[4.0, 4, 30, 30], [20, 24, 60, 50]]), "labels": torch.tensor([1, 3])})
    for _ in range(4)
]
""",
    "docs/video-audio.md": "",
}
PAGES_WITH_CODE = sorted(
    str(p.relative_to(ROOT)) for p in [README, *(ROOT / "docs").rglob("*.md")] if "```python" in p.read_text()
)


def test_every_page_with_python_blocks_runs_them():
    assert sorted(READER) == PAGES_WITH_CODE


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if "num_workers=" in (ROOT / p).read_text() else p for p in READER],
)
def test_the_pages_python_blocks_run_as_printed(page):
    from integration_support import global_state_kept

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
    assert blocks, page
    scope = {"__name__": "page"}
    with global_state_kept():
        exec(compile(READER[page], f"the reader's part of {page}", "exec"), scope)
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page}, block {i + 1}", "exec"), scope)
