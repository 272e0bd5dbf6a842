"""Train heads on frozen CLIP embeddings: logistic regression, class prototypes, and the deployed MLP.

Every head is written as a weights document and evaluated through the runtime's own ``Head`` — the
numbers reported are those of the file that will be deployed, not of the training library's object.

* ``logreg`` — softmax regression on L2-normalised features (scikit-learn, lbfgs), standardised on the
  training split (folded back into the exported layer), the inverse regularisation ``C`` chosen by a
  warm-started sweep on the validation split by log loss (CLIP's linear probe).
  Soft targets (label smoothing, soft labels) are fitted exactly: each row is repeated once per class it
  has weight on, with that weight as its sample weight (cross-entropy is linear in the target).
* ``prototype`` — the normalised mean of each class's normalised features, logits ``T · cos`` with the
  temperature ``T`` chosen on the validation split: works with 1–10 images per class.
* ``mlp`` — the deployed shape D→256→128→K, ReLU, dropout, AdamW weight decay, early stopping on the
  validation loss; ``sigmoid_normalized`` (binary cross-entropy per class, as the deployed output) or
  ``softmax`` (cross-entropy). PyTorch (the 'export' extra).
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights

from .head_files import head_document
from .training_data import DataError, Dataset

HeadType = Literal["logreg", "prototype", "mlp"]
HEAD_TYPES: tuple[HeadType, ...] = ("prototype", "logreg", "mlp")
#: The tie-break order of a comparison, simplest first (zero-shot needs no training at all).
SIMPLEST_FIRST = ("zero_shot", "prototype", "logreg", "wise", "mlp")
# Wide: unit-normalised features of a random-init or narrow model differ by little, and need a large C or
# temperature to be told apart (real CLIP features settle in the middle of these ranges).
C_GRID = tuple(float(c) for c in np.logspace(-2, 4, 13))
TEMPERATURES = tuple(float(t) for t in np.logspace(0, 3.5, 15))
#: lbfgs settings (also what the parity test refits scikit-learn with).
LOGREG = {"max_iter": 2000, "tol": 1e-6}


@dataclass
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


@dataclass
class TrainOptions:
    seed: int = 0
    label_smoothing: float = 0.0
    class_weights: bool = False
    mlp_output: Literal["sigmoid_normalized", "softmax"] = "sigmoid_normalized"
    mlp_dropout: float = 0.2
    mlp_weight_decay: float = 1e-3
    mlp_max_epochs: int = 300
    mlp_patience: int = 20
    margin: float = 0.0  # top-1/top-2 margin loss weight (MLP)
    #: Where progress lines go (each C of the sweep, each MLP epoch span), e.g. stderr; ``None``: nowhere.
    progress: Callable[[str], None] | None = None


@dataclass
class TrainedHead:
    head_type: str  # a HeadType, or "zero_shot" / "wise" (clip_export.zero_shot) in a comparison
    document: dict[str, Any]
    head: Head
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    #: The training library's own model (the MLP's torch module, in eval mode), for parity checks.
    reference: Any = None

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.head.forward(np.asarray(features, dtype=np.float32))[1], dtype=np.float64)


def stratified_split(
    hard: np.ndarray, classes: Sequence[str], seed: int, fractions: tuple[float, float] = (0.15, 0.15)
) -> Split:
    """Per class: shuffle (seeded), then at least one item each for validation and test."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    too_small = []
    for k, label in enumerate(classes):
        members = np.flatnonzero(hard == k)
        if len(members) < 3:
            too_small.append(f"{label} ({len(members)})")
            continue
        members = rng.permutation(members)
        n_val = max(1, round(len(members) * fractions[0]))
        n_test = max(1, round(len(members) * fractions[1]))
        parts["validation"] += members[:n_val].tolist()
        parts["test"] += members[n_val : n_val + n_test].tolist()
        parts["train"] += members[n_val + n_test :].tolist()
    if too_small:
        raise DataError(
            "each class needs at least 3 examples for a train/validation/test split; too few: "
            + ", ".join(too_small)
        )
    return Split(
        *(np.asarray(sorted(parts[name]), dtype=np.int64) for name in ("train", "validation", "test"))
    )


def fold_splits(hard: np.ndarray, classes: Sequence[str], folds: int, seed: int) -> list[Split]:
    """K stratified folds (seeded): in split f, fold f is the test set, fold f+1 the validation set, and the
    rest the training set — every example is tested exactly once (out-of-fold predictions)."""
    if folds < 3:
        raise DataError("--folds needs at least 3 (one fold each for test and validation, one to train on)")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(hard), dtype=np.int64)
    too_small = []
    for k, label in enumerate(classes):
        members = rng.permutation(np.flatnonzero(hard == k))
        if len(members) < folds:
            too_small.append(f"{label} ({len(members)})")
        assignment[members] = np.arange(len(members)) % folds
    if too_small:
        raise DataError(
            f"--folds {folds} needs at least {folds} examples per class; too few: " + ", ".join(too_small)
        )
    return [
        Split(
            train=np.flatnonzero((assignment != f) & (assignment != (f + 1) % folds)),
            validation=np.flatnonzero(assignment == (f + 1) % folds),
            test=np.flatnonzero(assignment == f),
        )
        for f in range(folds)
    ]


def soft_targets(targets: np.ndarray, smoothing: float) -> np.ndarray:
    k = targets.shape[1]
    return np.asarray((1.0 - smoothing) * targets + smoothing / k)


def class_weight_vector(targets: np.ndarray, enabled: bool) -> np.ndarray:
    """Inverse-frequency weights normalised to mean 1 (``balanced``), or ones."""
    if not enabled:
        return np.ones(targets.shape[1])
    counts = targets.sum(axis=0)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1e-12))
    return np.asarray(weights)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def log_loss(probabilities: np.ndarray, targets: np.ndarray) -> float:
    return float(-(targets * np.log(np.clip(probabilities, 1e-12, 1.0))).sum(axis=1).mean())


def _finish(head_type: HeadType, doc: dict[str, Any], hyper: dict[str, Any]) -> TrainedHead:
    return TrainedHead(head_type, doc, Head(parse_weights(json.dumps(doc))), hyper)


def _document(
    data: Dataset, head_type: HeadType, linears: list[tuple[np.ndarray, np.ndarray]], output: str
) -> dict[str, Any]:
    return head_document(
        data.classes,
        linears,
        output=output,
        head_type=head_type,
        training={},  # filled by the trainer once the split and metrics are known
        exported_by="weights/train_head.py",
    )


def train_logreg(data: Dataset, split: Split, options: TrainOptions) -> TrainedHead:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression  # the 'train' extra

    x = unit(data.features)
    targets = soft_targets(data.targets, options.label_smoothing)
    weights = class_weight_vector(data.targets[split.train], options.class_weights)
    # Preconditioned: lbfgs on unit CLIP features (every dimension ~1/sqrt(D), a few far wider) crawls and
    # stops unconverged; standardised on the training split it converges in tens of iterations. The
    # standardisation is folded into the exported layer, so the runtime (and the head file) is unchanged.
    mean, scale = standardisation(x[split.train])
    z = (x - mean) / scale
    rows, labels, sample_weight = _expand(z[split.train], targets[split.train], weights)
    # One model, warm-started from the previous (smaller) C: each fit starts near its answer.
    model = LogisticRegression(warm_start=True, **LOGREG)
    best: tuple[float, float, Any] | None = None
    unconverged: list[float] = []
    started = time.perf_counter()
    for index, c in enumerate(C_GRID):
        model.set_params(C=c)
        with warnings.catch_warnings():
            # Reported once below, by C, instead of scikit-learn's warning per fit.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(rows, labels, sample_weight=sample_weight)
        if int(np.max(model.n_iter_)) >= LOGREG["max_iter"]:
            unconverged.append(c)
        loss = log_loss(
            _full_proba(model, z[split.validation], len(data.classes)), data.targets[split.validation]
        )
        if best is None or loss < best[0] - 1e-12:
            best = (loss, c, copy.deepcopy(model))
        _say(
            options,
            f"logreg: C {c:g} ({index + 1}/{len(C_GRID)}), validation log loss {loss:.4f}",
            started,
            index + 1,
            len(C_GRID),
        )
    assert best is not None
    _, c, chosen = best
    weight, bias = _full_coef(chosen, len(data.classes), x.shape[1])
    folded = weight / scale
    doc = _document(data, "logreg", [(folded, bias - folded @ mean)], "softmax")
    hyper: dict[str, Any] = {
        "C": c,
        "C_grid": list(C_GRID),
        "selected_by": "validation log loss",
        "features": "standardised on the training split (folded into the layer)",
    }
    if unconverged:
        hyper["not_converged_at_C"] = unconverged
        _say(options, f"logreg: lbfgs stopped at {LOGREG['max_iter']} iterations for C = {unconverged}")
    trained = _finish("logreg", doc, hyper)
    trained.reference = (chosen, mean, scale)
    return trained


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and spread of ``x`` (a constant dimension keeps scale 1: nothing to learn there)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _say(
    options: TrainOptions, text: str, started: float | None = None, done: int = 0, total: int = 0
) -> None:
    """One line of progress (and, part-way, an estimate of the time left) to ``options.progress``."""
    if options.progress is None:
        return
    if started is not None and total:
        elapsed = time.perf_counter() - started
        left = elapsed / max(done, 1) * (total - done)
        text += f" — {elapsed:.1f} s" + (f", about {left:.0f} s left" if done < total else "")
    options.progress(text)


def train_logreg_anchored(
    data: Dataset,
    split: Split,
    options: TrainOptions,
    anchor: tuple[np.ndarray, np.ndarray],
    c_grid: Sequence[float] = C_GRID,
) -> TrainedHead:
    """``logreg`` started at, and regularised towards, another head's weights (``--init zero-shot``).

    scikit-learn's objective is ``C · Σ CE + ½‖W‖²``: convex, so where it starts does not matter. Here it
    is ``C · Σ CE + ½‖W − W₀‖²`` with ``W₀`` the zero-shot head's weights: a small ``C`` keeps the zero-shot
    head, a large one fits the data, and the sweep on validation picks between them. With ``W₀ = 0`` it is
    scikit-learn's problem exactly (the parity test).
    """
    from scipy.optimize import minimize  # scikit-learn's own dependency

    x = unit(data.features)
    targets = soft_targets(data.targets, options.label_smoothing)
    weights = class_weight_vector(data.targets[split.train], options.class_weights)
    w0, b0 = (np.asarray(a, dtype=np.float64) for a in anchor)
    k, dim = w0.shape
    rows, labels, sample_weight = _expand(x[split.train], targets[split.train], weights)

    def fit(c: float, start: np.ndarray) -> np.ndarray:
        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[: k * dim].reshape(k, dim), theta[k * dim :]
            logits = rows @ w.T + b
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            loss = -c * float((sample_weight * log_p[np.arange(len(labels)), labels]).sum())
            grad_logits = np.exp(log_p)
            grad_logits[np.arange(len(labels)), labels] -= 1.0
            grad_logits *= c * sample_weight[:, None]
            delta = w - w0
            loss += 0.5 * float((delta * delta).sum())
            grad = np.concatenate([(grad_logits.T @ rows + delta).ravel(), grad_logits.sum(axis=0)])
            return loss, grad

        result = minimize(
            objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-8}
        )
        return np.asarray(result.x)

    start = np.concatenate([w0.ravel(), b0])
    best: tuple[float, float, np.ndarray] | None = None
    for c in c_grid:
        theta = fit(c, start)
        w, b = theta[: k * dim].reshape(k, dim), theta[k * dim :]
        logits = x[split.validation] @ w.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        loss = log_loss(p / p.sum(axis=1, keepdims=True), data.targets[split.validation])
        if best is None or loss < best[0] - 1e-12:
            best = (loss, c, theta)
    assert best is not None
    _, c, theta = best
    doc = _document(data, "logreg", [(theta[: k * dim].reshape(k, dim), theta[k * dim :])], "softmax")
    hyper = {
        "C": c,
        "C_grid": list(C_GRID),
        "selected_by": "validation log loss",
        "init": "anchored at the zero-shot head",
    }
    return _finish("logreg", doc, hyper)


def _expand(
    x: np.ndarray, targets: np.ndarray, class_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft targets as weighted rows: row i appears once per class k with weight targets[i, k] · w_k."""
    rows, labels = np.nonzero(targets > 0)
    return x[rows], labels, targets[rows, labels] * class_weights[labels]


def _full_proba(model: Any, x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(x), k))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _full_coef(model: Any, k: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's coefficients as a K-way softmax layer (binary problems store one row: [-w/2, +w/2])."""
    weight, bias = np.zeros((k, dim)), np.full(k, -1e4)  # a class never seen in training: never predicted
    coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
    if coef.shape[0] == 1:
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.asarray([-intercept[0] / 2, intercept[0] / 2])
    weight[model.classes_], bias[model.classes_] = coef, intercept
    return weight, bias


def train_prototype(data: Dataset, split: Split, options: TrainOptions) -> TrainedHead:
    x = unit(data.features)
    targets = soft_targets(data.targets, options.label_smoothing)[split.train]
    prototypes = unit(targets.T @ x[split.train])  # soft-label weighted class means of unit vectors
    best: tuple[float, float] | None = None
    for temperature in TEMPERATURES:
        logits = temperature * x[split.validation] @ prototypes.T
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        loss = log_loss(probabilities, data.targets[split.validation])
        if best is None or loss < best[0] - 1e-12:
            best = (loss, temperature)
    assert best is not None
    doc = _document(data, "prototype", [(prototypes * best[1], np.zeros(len(data.classes)))], "softmax")
    return _finish(
        "prototype",
        doc,
        {"temperature": best[1], "temperatures": list(TEMPERATURES), "selected_by": "validation log loss"},
    )


def train_mlp(data: Dataset, split: Split, options: TrainOptions) -> TrainedHead:
    import torch  # the 'export' extra

    # Batches of 64 rows through a 512→256→128 network are too small to share between threads: one thread
    # trains 2.5–4x faster here than PyTorch's default pool (measured on 4,000 vectors, 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_mlp(data, split, options)
    finally:
        torch.set_num_threads(threads)


def _train_mlp(data: Dataset, split: Split, options: TrainOptions) -> TrainedHead:
    import torch

    torch.manual_seed(options.seed)
    k, dim = len(data.classes), data.features.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(dim, 256),
        torch.nn.ReLU(),
        torch.nn.Dropout(options.mlp_dropout),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Dropout(options.mlp_dropout),
        torch.nn.Linear(128, k),
    )
    x = torch.from_numpy(unit(data.features).astype(np.float32))
    targets = torch.from_numpy(soft_targets(data.targets, options.label_smoothing).astype(np.float32))
    class_w = torch.from_numpy(
        class_weight_vector(data.targets[split.train], options.class_weights).astype(np.float32)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=options.mlp_weight_decay)
    train_idx, val_idx = torch.from_numpy(split.train), torch.from_numpy(split.validation)
    generator = torch.Generator().manual_seed(options.seed)

    def loss_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if options.mlp_output == "softmax":
            per_row = -(target * class_w * torch.log_softmax(logits, dim=1)).sum(dim=1)
        else:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            per_row = (bce * class_w).sum(dim=1)
        loss = per_row.mean()
        if options.margin > 0:
            top2 = torch.topk(logits, 2, dim=1).values
            true = (logits * (target == target.max(dim=1, keepdim=True).values)).sum(dim=1)
            loss = loss + options.margin * torch.relu(1.0 - (true - top2[:, 1])).mean()
        return loss

    best_loss, best_state, stale, epochs = float("inf"), None, 0, 0
    batch = 64
    started = time.perf_counter()
    for epoch in range(1, options.mlp_max_epochs + 1):
        epochs = epoch
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            optimizer.zero_grad()
            loss_of(model(x[rows]), targets[rows]).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_of(model(x[val_idx]), targets[val_idx]))
        if val_loss < best_loss - 1e-6:
            best_loss, stale = val_loss, 0
            best_state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        else:
            stale += 1
        if epoch % 10 == 0 or stale >= options.mlp_patience:
            # The estimate is an upper bound: early stopping usually ends sooner than the last epoch.
            _say(
                options,
                f"mlp: epoch {epoch}/{options.mlp_max_epochs}, validation loss {val_loss:.4f} (best {best_loss:.4f})",
                started,
                epoch,
                options.mlp_max_epochs,
            )
        if stale >= options.mlp_patience:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    linears = [
        (layer.weight.detach().numpy(), layer.bias.detach().numpy())
        for layer in model
        if isinstance(layer, torch.nn.Linear)
    ]
    doc = _document(data, "mlp", linears, options.mlp_output)
    hyper = {
        "hidden": [256, 128],
        "dropout": options.mlp_dropout,
        "weight_decay": options.mlp_weight_decay,
        "optimizer": "AdamW lr 1e-3, batch 64",
        "epochs": epochs,
        "early_stopping_patience": options.mlp_patience,
        "best_validation_loss": best_loss,
        "output": options.mlp_output,
        "margin": options.margin,
    }
    trained = _finish("mlp", doc, hyper)
    trained.reference = model.eval()
    return trained


TRAINERS = {"logreg": train_logreg, "prototype": train_prototype, "mlp": train_mlp}
