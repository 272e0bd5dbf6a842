"""weights/export_mlp_weights.py against torch.nn: needs the 'export' extra (torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_local.paths import REPO_ROOT

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.export

SCRIPT = REPO_ROOT / "weights" / "export_mlp_weights.py"
CLASSES = [f"class_{i}" for i in range(12)]


def run_export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def training_like_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, 12),
        nn.Sigmoid(),
    )


def torch_probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        scores = model(torch.nn.functional.normalize(x, dim=-1))
        return (scores / scores.sum(dim=-1, keepdim=True)).numpy()


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(CLASSES))
    return path


def test_sequential_checkpoint_round_trip_matches_torch_on_1000_vectors(tmp_path: Path, labels: Path) -> None:
    model = training_like_model(3)
    # Make the weights less uniform than a fresh init, as training would.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    ckpt = tmp_path / "head.pt"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "head.json"
    result = run_export("--checkpoint", str(ckpt), "--classes", str(labels), "--out", str(out))
    assert result.returncode == 0, result.stderr

    doc = parse_weights(out.read_bytes())
    import hashlib

    assert doc.provenance.source_checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    head = Head(doc)
    x = torch.randn(1000, 512, generator=torch.Generator().manual_seed(0))
    _, ours = head.forward(x.numpy().astype(np.float32))
    reference = torch_probabilities(model, x)
    assert np.abs(ours - reference).max() <= 1e-6
    assert np.allclose(ours.sum(axis=1), 1.0, atol=1e-6)


def test_named_linear_layers_checkpoint_in_a_wrapper(tmp_path: Path, labels: Path) -> None:
    class Named(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc_in = nn.Linear(512, 256)
            self.hidden = nn.Linear(256, 128)
            self.classifier = nn.Linear(128, 12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.classifier(torch.relu(self.hidden(torch.relu(self.fc_in(x))))))

    torch.manual_seed(1)
    model = Named()
    ckpt = tmp_path / "named.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 7}, ckpt)
    out = tmp_path / "named.json"
    assert run_export("--checkpoint", str(ckpt), "--classes", str(labels), "--out", str(out)).returncode == 0
    head = Head(parse_weights(out.read_bytes()))
    x = torch.randn(1000, 512, generator=torch.Generator().manual_seed(1))
    assert np.abs(head.forward(x.numpy().astype(np.float32))[1] - torch_probabilities(model, x)).max() <= 1e-6


def test_logistic_regression_softmax_head(tmp_path: Path, labels: Path) -> None:
    torch.manual_seed(2)
    linear = nn.Linear(512, 12)
    ckpt = tmp_path / "logreg.pt"
    torch.save(nn.Sequential(linear).state_dict(), ckpt)
    out = tmp_path / "logreg.json"
    result = run_export(
        "--checkpoint",
        str(ckpt),
        "--classes",
        str(labels),
        "--out",
        str(out),
        "--output",
        "softmax",
        "--input-normalization",
        "none",
    )
    assert result.returncode == 0, result.stderr
    doc = parse_weights(out.read_bytes())
    assert doc.head_type == "logreg"
    x = torch.randn(100, 512)
    with torch.no_grad():
        expected = torch.softmax(linear(x), dim=-1).numpy()
    assert np.abs(Head(doc).forward(x.numpy())[1] - expected).max() <= 1e-6


def test_pickled_code_is_refused(tmp_path: Path, labels: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": training_like_model(0).state_dict(), "hook": Path("/etc/passwd")}, evil)
    result = run_export(
        "--checkpoint", str(evil), "--classes", str(labels), "--out", str(tmp_path / "x.json")
    )
    assert result.returncode != 0
    assert "Weights only load failed" in result.stderr or "weights_only" in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_wrong_label_count_is_refused_before_writing(tmp_path: Path) -> None:
    labels = tmp_path / "eleven.txt"
    labels.write_text("\n".join(CLASSES[:11]))
    ckpt = tmp_path / "head.pt"
    torch.save(training_like_model(0).state_dict(), ckpt)
    result = run_export(
        "--checkpoint", str(ckpt), "--classes", str(labels), "--out", str(tmp_path / "h.json")
    )
    assert result.returncode != 0
    assert "classes has 11 labels but the last layer outputs 12" in result.stderr
    assert not (tmp_path / "h.json").exists()


def test_committed_example_is_reproducible(tmp_path: Path) -> None:
    example = REPO_ROOT / "weights" / "example"
    out, golden = tmp_path / "example_head.json", tmp_path / "golden.json"
    result = run_export(
        "--random-init",
        "--seed",
        "0",
        "--classes",
        str(example / "classes.txt"),
        "--out",
        str(out),
        "--golden-out",
        str(golden),
    )
    assert result.returncode == 0, result.stderr
    assert (
        parse_weights(out.read_bytes()).content_sha256
        == parse_weights((example / "example_head.json").read_bytes()).content_sha256
    )


def test_random_init_head_for_a_768_d_embedder(tmp_path: Path, labels: Path) -> None:
    """ViT-L/14 outputs 768 values: the random-init head follows ``--input-dim``."""
    out = tmp_path / "h768.json"
    result = run_export("--random-init", "--input-dim", "768", "--classes", str(labels), "--out", str(out))
    assert result.returncode == 0, result.stderr
    weights = parse_weights(out.read_bytes())
    assert weights.input_dim == 768
    assert [weight.shape for weight, _ in weights.arrays()] == [(256, 768), (128, 256), (len(CLASSES), 128)]
