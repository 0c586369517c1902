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
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from neuralcollapse import schema

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
    config["version"] = "0.1.0"
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
    with (directory / "epochs.jsonl").open("w") as handle:
        for row in epoch_rows:
            handle.write(schema.dumps(row) + "\n")
    last = max(measured)
    with (directory / "metrics.jsonl").open("w") as handle:
        for epoch in measured:
            for split in ("train", "test"):
                for depth, layer in enumerate(LAYERS):
                    head = {"epoch": epoch, "split": split, "layer": layer}
                    head.update(
                        {
                            k: v
                            for k, v in epoch_rows[epoch].items()
                            if k not in ("epoch", "seconds")
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
                    handle.write(schema.dumps(row) + "\n")
    if write_summary:
        tpt = next((row["epoch"] for row in epoch_rows if row["train_error"] == 0), None)
        summary = {
            "tpt_epoch": tpt,
            "epochs_done": epochs,
            "final": epoch_rows[-1],
            "finished": finished,
        }
        (directory / "summary.json").write_text(schema.dumps(summary))
    return directory
