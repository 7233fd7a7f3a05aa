"""The package as people install it: license, changelog and version, the command line, metadata, and a wheel
that runs the quickstart where torchvision is not installed."""

import ast
import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mixup_collate

pytestmark = pytest.mark.slow  # runs the demo, the package, a framework or torchrun

ROOT = Path(__file__).resolve().parents[1]
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def run(*args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, **kwargs)


class TestVersion:
    def test_the_changelog_the_package_and_the_command_agree(self):
        changelog = (ROOT / "CHANGELOG.md").read_text()
        newest = re.search(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE).group(1)
        assert newest == mixup_collate.__version__
        assert run("-m", "mixup_collate", "--version").stdout.strip() == f"mixup-collate {newest}"

    def test_python_dash_m_is_the_command_line(self):
        done = run("-m", "mixup_collate", "--help")
        assert done.returncode == 0 and "usage: mixup-collate" in done.stdout and "demo" in done.stdout


class TestMetadata:
    def test_the_license_file_is_the_declared_mit_license(self):
        assert (ROOT / "LICENSE").read_text().startswith("MIT License")
        assert (
            SETUP["metadata"]["license"] == "MIT"
            and "License :: OSI Approved :: MIT License" in SETUP["metadata"]["classifiers"]
        )

    def test_torch_and_numpy_are_the_only_requirements(self):
        required = [line.split(">")[0].strip() for line in SETUP["options"]["install_requires"].split("\n") if line]
        assert required == ["torch", "numpy"]
        assert "ruff" in SETUP["options.extras_require"]["dev"]

    def test_importing_the_library_never_imports_torchvision(self):
        """Only a function that meets torchvision's own types (a detection batch's BoundingBoxes) imports it."""
        done = run("-c", "import sys, mixup_collate.collate, mixup_collate.loss; print('torchvision' in sys.modules)")
        assert done.stdout.strip() == "False", done.stderr[-2000:]
        offenders = []
        for path in (ROOT / "mixup_collate").rglob("*.py"):
            for node in ast.parse(path.read_text()).body:  # module level
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "torchvision"]
        assert not offenders


QUICKSTART = """
import sys
class NoTorchvision:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torchvision":
            raise ImportError("torchvision is not installed")
sys.meta_path[:] = [NoTorchvision()] + [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import torch
from torch.utils.data import DataLoader, TensorDataset
import mixup_collate
from mixup_collate import MixupCollate, mixup_cross_entropy
assert mixup_collate.__file__.startswith(sys.argv[1]), mixup_collate.__file__
data = TensorDataset(torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8), torch.arange(32) % 4)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4))
loader = DataLoader(data, batch_size=8, collate_fn=MixupCollate(alpha=0.4, cutmix_alpha=1.0, device="cpu", seed=0))
for x, y_a, y_b, lam in loader:
    mixup_cross_entropy(model(x), y_a, y_b, lam).backward()
print("trained", mixup_collate.__version__)
"""


@pytest.mark.slow
def test_a_wheel_from_the_checkout_runs_the_quickstart_without_torchvision(tmp_path):
    built = run("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT))
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("mixup_collate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("METADATA"))
        archive.extractall(tmp_path / "site")
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert [r.split()[1].split(">")[0] for r in requires] == ["torch", "numpy"]
    done = run("-c", QUICKSTART, str(tmp_path / "site"))
    assert done.returncode == 0 and done.stdout.strip() == f"trained {mixup_collate.__version__}", done.stderr[-2000:]
