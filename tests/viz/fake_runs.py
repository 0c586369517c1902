"""Synthetic run directories in the format ``neuralcollapse train`` writes, built from the schema.

Every metric of :data:`neuralcollapse.schema.METRICS` is written (no hand-kept key list), so a
metric added to or renamed in the schema reaches the report tests at once. The numbers are made
up: each metric approaches its value at exact collapse onto the chosen ``frame``
(:func:`neuralcollapse.schema.theory_value`) geometrically over the epochs, or moves away from it
for the keys in ``rising``. The tests check how the report reads, judges and draws them, not what
the metrics are.

Variants a real run can produce:

- ``not_computed={(epoch, layer): reason}``: that row is all null with ``not_computed: {"*":
  reason}``, exactly as :func:`neuralcollapse.schema.metric_row` writes it;
- ``infinite=("unc3_cv",)``: those keys are +inf at the last measured epoch, written as the
  string ``"Infinity"`` by :func:`neuralcollapse.schema.dumps`;
- ``loss=None`` / ``bias=None``: config.json lacks the key (runs written by CollapseTracker).

The per-epoch measures that ride along (docs/training.md, "What rides along"), all off by
default:

- ``mse_terms=True``: the ``penultimate_post`` rows hold ``mse_*`` terms, each falling as
  ``exp(-decay * epoch)`` (rising for the keys in ``rising``), ``mse_loss`` their sum;
- ``robustness=True``: measured epochs of epochs.jsonl hold ``deepfool_*`` columns (None at the
  others), ``deepfool_ratio`` growing by ``exp(deepfool_growth * epoch)``;
- ``minority_classes=K_B``: epochs.jsonl holds ``accuracy_majority``/``accuracy_minority`` and
  ``minority_cosine_weights`` every epoch, ``minority_cosine_means`` at measured epochs; the
  cosines rise from the ETF level -1/(K-1) towards 1 (``minority_collapse=True``) or fall
  from 0.8 towards it;
- ``generalisation=True``: summary.json holds the generalisation table (computed by
  :func:`neuralcollapse.robustness.generalisation_table`, as the training loop does);
  ``final_test_error`` makes the test error move linearly from 0.2 to it;
- ``layers``: the measured layers (default :data:`LAYERS`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from neuralcollapse import runformat, schema

LAYERS = ("layer1", "layer2", "penultimate_pre", "penultimate_post")
#: every metric key the fixture writes: all of them, from the schema
METRIC_KEYS = tuple(schema.METRICS)
#: epochs whose metrics the default fake run measures
MEASURED = (0, 1, 2, 4, 8, 11)


def _needs_classifier(key: str) -> bool:
    """Whether the metric is only computed where the classifier is (the penultimate layer).

    The NCC mismatch compares the classifier's decision with the nearest centre, so it needs
    the classifier too although its schema entry names only ``nearest_centre``.
    """
    return schema.METRICS[key].needs == "classifier" or key == "ncc_mismatch"


def _is_fraction(key: str) -> bool:
    return "fraction" in schema.METRICS[key].description


def metric_value(key: str, scale: float, frame: str, num_classes: int) -> float:
    """A made-up value of ``key`` at distance ``scale`` (> 0) from exact collapse onto ``frame``.

    Collapse measures sit ``scale`` above their theory value (or below it when higher is better);
    fractions stay inside [0, 1]; sizes are the run's K, N = 10 K, d = 2 K.
    """
    sizes = {"num_classes": num_classes, "num_samples": 10 * num_classes, "dim": 2 * num_classes}
    if key in sizes:
        return float(sizes[key])
    spec = schema.METRICS[key]
    target = schema.theory_value(key, frame, num_classes)
    if _is_fraction(key):
        # a fraction that starts near one half and goes to its limit (0 or 1)
        offset = 0.5 * scale / (1.0 + scale)
        return 1.0 - offset if spec.lower_is_better is False else offset
    if spec.lower_is_better is False:
        base = target if target is not None else 1.0
        return base * (1.0 - 0.5 * scale / (1.0 + scale))
    if spec.lower_is_better is None:
        # no direction (global-mean ratio, between-class variance): approach the frame's value
        return (target if target is not None else 1.0) + 0.3 * scale
    return (target if target is not None else 0.0) + scale


def write_fake_run(
    directory: Path,
    *,
    epochs: int = 12,
    num_classes: int = 4,
    measured: Sequence[int] = MEASURED,
    finished: bool = True,
    loss: str | None = "mse",
    bias: bool | None = False,
    frame: str = "orthogonal",
    decay: float = 0.4,
    rising: Collection[str] = (),
    final_train_error: float = 0.0,
    not_computed: Mapping[tuple[int, str], str] | None = None,
    infinite: Collection[str] = (),
    write_summary: bool = True,
    layers: Sequence[str] = LAYERS,
    mse_terms: bool = False,
    robustness: bool = False,
    deepfool_growth: float = 0.1,
    minority_classes: int | None = None,
    imbalance: float = 10.0,
    minority_collapse: bool = True,
    generalisation: bool = False,
    final_test_error: float | None = None,
) -> Path:
    """Write config.json, epochs.jsonl, metrics.jsonl and summary.json of a fake run.

    Parameters
    ----------
    directory : the run directory (created).
    epochs, measured : epochs trained, and those whose metrics are written (train and test).
    num_classes : K.
    finished : summary.json's ``finished``.
    loss, bias : config.json's ``loss`` and ``bias``; None leaves the key out.
    frame : "orthogonal" or "etf", the frame every metric approaches.
    decay : the distance to collapse is ``exp(-decay * epoch)`` (times a depth factor).
    rising : keys that move away from collapse instead (``exp(+decay * epoch)``).
    final_train_error : the floor of the training error; > 0 means zero error is never reached.
    not_computed : ``{(epoch, layer): reason}`` rows (both splits) with no metric computed.
    infinite : keys that are +inf at the last measured epoch wherever they are computed.
    write_summary : whether to write summary.json.
    layers : the measured layers, input side first.
    mse_terms, robustness, deepfool_growth, minority_classes, imbalance, minority_collapse,
    generalisation, final_test_error : the measures that ride along (module docstring).

    Returns
    -------
    The run directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    not_computed = dict(not_computed or {})
    config: dict[str, object] = {"dataset": "fake", "model": "mlp", "epochs": epochs}
    if loss is not None:
        config["loss"] = loss
    if bias is not None:
        config["bias"] = bias
    if minority_classes is not None:
        config["imbalance"] = imbalance
        config["minority_classes"] = minority_classes
    if robustness:
        config["robustness"] = 20
    config["version"] = runformat.VERSION
    (directory / "config.json").write_text(schema.dumps(config))
    epoch_rows = []
    for epoch in range(epochs):
        epoch_rows.append(
            {
                "epoch": epoch,
                "lr": 0.1,
                "train_loss": math.exp(-epoch),
                "train_error": max(final_train_error, 0.5 - 0.1 * epoch),
                "test_loss": 1.0,
                "test_error": 0.2,
                "seconds": 0.5,
            }
        )
        if final_test_error is not None:
            share = epoch / max(epochs - 1, 1)
            epoch_rows[-1]["test_error"] = 0.2 + share * (final_test_error - 0.2)
        epoch_rows[-1].update(
            _extra_epoch_columns(
                epoch,
                epoch in measured,
                num_classes=num_classes,
                decay=decay,
                robustness=robustness,
                deepfool_growth=deepfool_growth,
                minority_classes=minority_classes,
                minority_collapse=minority_collapse,
            )
        )
    with (directory / "epochs.jsonl").open("w") as handle:
        for row in epoch_rows:
            handle.write(schema.dumps(row) + "\n")
    last = max(measured)
    with (directory / "metrics.jsonl").open("w") as handle:
        for epoch in measured:
            for split in ("train", "test"):
                for depth, layer in enumerate(layers):
                    head = {"epoch": epoch, "split": split, "layer": layer}
                    head.update(
                        {
                            k: v
                            for k, v in epoch_rows[epoch].items()
                            if k in ("lr", "train_loss", "train_error", "test_loss", "test_error")
                        }
                    )
                    reason = not_computed.get((epoch, layer))
                    if reason is not None:
                        handle.write(schema.dumps({**head, **schema.metric_row(None, reason)}))
                        handle.write("\n")
                        continue
                    depth_factor = 1.0 + 1.0 / (depth + 1)
                    row = dict(head)
                    for key in METRIC_KEYS:
                        sign = 1.0 if key in rising else -1.0
                        scale = math.exp(sign * decay * epoch) * depth_factor
                        if layer != "penultimate_post" and _needs_classifier(key):
                            row[key] = None
                        elif key in infinite and epoch == last:
                            row[key] = math.inf
                        else:
                            row[key] = metric_value(key, scale, frame, num_classes)
                    if mse_terms and layer == "penultimate_post":
                        row.update(_mse_columns(epoch, decay, rising))
                    handle.write(schema.dumps(row) + "\n")
    if write_summary:
        tpt = next((row["epoch"] for row in epoch_rows if row["train_error"] == 0), None)
        summary = {
            "tpt_epoch": tpt,
            "epochs_done": epochs,
            "final": epoch_rows[-1],
            "finished": finished,
        }
        if generalisation:
            from neuralcollapse.robustness import generalisation_table

            summary["generalisation"] = generalisation_table(epoch_rows).to_dict()
        (directory / "summary.json").write_text(schema.dumps(summary))
    return directory


def _mse_columns(epoch: int, decay: float, rising: Collection[str]) -> dict[str, float]:
    """Made-up MSE terms at ``epoch``: each ``start * exp(-/+ decay * epoch)``."""
    starts = {"mse_nc1": 0.3, "mse_nc2_3": 0.2, "mse_ls_perp": 0.01}
    terms = {
        key: start * math.exp((1.0 if key in rising else -1.0) * decay * epoch)
        for key, start in starts.items()
    }
    return {
        **terms,
        "mse_loss_ls": terms["mse_nc1"] + terms["mse_nc2_3"],
        "mse_loss": sum(terms.values()),
        "mse_ridge": 5e-4,
    }


def _extra_epoch_columns(
    epoch: int,
    measured: bool,
    *,
    num_classes: int,
    decay: float,
    robustness: bool,
    deepfool_growth: float,
    minority_classes: int | None,
    minority_collapse: bool,
) -> dict[str, object]:
    """The robustness and imbalance columns of one epochs.jsonl row (as the loop writes them)."""
    row: dict[str, object] = {}
    reasons = {}
    if robustness:
        keys = ("deepfool_ratio", "deepfool_failed_fraction", "deepfool_count", "deepfool_seconds")
        if measured:
            row.update(
                {
                    "deepfool_ratio": 0.05 * math.exp(deepfool_growth * epoch),
                    "deepfool_failed_fraction": 0.0,
                    "deepfool_count": 20,
                    "deepfool_seconds": 0.1,
                }
            )
        else:
            row.update(dict.fromkeys(keys))
    if minority_classes is not None:
        etf = -1.0 / (num_classes - 1)
        distance = math.exp(-decay * epoch)
        if minority_collapse:  # from the ETF level towards 1 (merged)
            cosine = 1.0 - (1.0 - etf) * distance
        else:  # from 0.8 towards the ETF level
            cosine = etf + (0.8 - etf) * distance
        row["accuracy_majority"] = 0.9 - 0.3 * distance
        row["accuracy_minority"] = 0.5 - 0.2 * distance
        row["minority_cosine_weights"] = cosine
        row["minority_cosine_means"] = cosine if measured else None
        if not measured:
            reasons["minority_cosine_means"] = "class means not gathered at this epoch"
    if reasons:
        row[schema.NOT_COMPUTED] = reasons
    return row
