"""The page of one snapshot: `neuralcollapse probe`'s report, and build_run_report on a run
measured at one epoch (issue 24, item 6)."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest
import torch

from neuralcollapse import frames, schema
from neuralcollapse.cli import main
from neuralcollapse.viz.report import (
    SNAPSHOT_TITLES,
    build_run_report,
    build_snapshot_report,
    is_snapshot,
)
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.training_figures import (
    classifier_input_layers,
    same_features,
    separation_fit,
)
from tests.integrations.factories import digits_mlp

from .fake_runs import write_fake_run

FACTORY = "tests.integrations.factories:digits_mlp"


def _trained_checkpoint(path: Path) -> Path:
    """digits_mlp trained for a few hundred full-batch steps (well above chance)."""
    from neuralcollapse.train.data import load_dataset

    data = load_dataset("digits")
    model = digits_mlp()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.train_images), data.train_labels)
        loss.backward()
        optimiser.step()
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def probe_page(tmp_path_factory) -> dict:
    """A probe of a trained MLP at layers 1, 3 and 4, where module 4 (the last ReLU) is the
    classifier's input itself."""
    root = tmp_path_factory.mktemp("snapshot")
    checkpoint = _trained_checkpoint(root / "net.pt")
    out = root / "out"
    arguments = ["probe", "--model", FACTORY, "--checkpoint", str(checkpoint)]
    arguments += ["--dataset", "digits", "--layers", "1,3,4", "--classifier", "5"]
    assert main([*arguments, "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    return {"out": out, "page": page, "text": html.unescape(re.sub(r"<[^>]+>", " ", page))}


def _titles(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<h2>\d+\. (.*?)</h2>", page)]


def _table(out: Path, name: str) -> list[dict]:
    with (out / "tables" / f"{name}.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_probe_page_is_the_snapshot_page_with_nothing_over_training(probe_page):
    page, text = probe_page["page"], probe_page["text"]
    assert _titles(page) == list(SNAPSHOT_TITLES)
    assert "over training" not in text.lower()
    for word in ("terminal phase not reached", "TPT", "epochs on a", "NC1 over training"):
        assert word not in text, word
    figures = sorted(path.stem for path in (probe_page["out"] / "figures").glob("*.png"))
    assert figures == ["depth_profile", "frame_geometry"]
    assert page.count('src="data:image/png;base64,') == 2


def test_probe_page_names_the_classifier_input_penultimate(probe_page):
    text = probe_page["text"]
    assert "penult. post-ReLU" not in text and "post-ReLU" not in text
    layers = [
        row["layer"] for row in _table(probe_page["out"], "layers") if row["split"] == "train"
    ]
    assert layers == ["1", "3", f"{schema.PENULTIMATE} (= 4)"]


def test_depth_fit_counts_the_classifier_input_once(probe_page):
    run = load_run(probe_page["out"] / "run")
    assert is_snapshot(run)
    # layer "4" (the last ReLU) and penultimate are the same features: one depth, not two
    assert classifier_input_layers(run) == ("4",)
    fit = separation_fit(run)
    assert fit.merged == ("4",)
    assert fit.fit is not None and len(fit.fit.layers) == 3  # 1, 3, penultimate
    assert "4" not in fit.fit.layers
    assert f"over {len(fit.fit.layers)} depths" in probe_page["text"]
    assert "drawn and fitted once" in probe_page["text"]


def test_same_features_tells_equal_layers_from_different_ones(probe_page):
    run = load_run(probe_page["out"] / "run")
    one, three, four, last = (
        run.last_row(layer=name) for name in ("1", "3", "4", "penultimate_post")
    )
    assert same_features(four, last)
    assert not same_features(one, last) and not same_features(three, last)
    changed = dict(four, nc1=four["nc1"] * (1 + 1e-6))
    assert not same_features(changed, last)


def test_without_a_duplicate_layer_every_layer_is_a_depth(tmp_path):
    out = tmp_path / "out"
    arguments = ["probe", "--model", FACTORY, "--dataset", "digits", "--layers", "1,3"]
    with pytest.warns(UserWarning, match="near chance"):
        assert main([*arguments, "--classifier", "5", "--out", str(out)]) == 0
    run = load_run(out / "run")
    fit = separation_fit(run)
    assert fit.merged == () and len(fit.fit.layers) == 3
    # an untrained network: the verdict on its accuracy says so, from its numbers
    rows = _table(out, "checks")
    accuracy = next(row for row in rows if row["check"] == "classifier accuracy")
    assert accuracy["verdict"] == "does not hold"


def test_page_states_the_preprocessing_of_the_built_in_set(probe_page, capsys):
    text = probe_page["text"]
    assert "normalised per channel with the training split's mean and standard deviation" in text
    assert "fixed stratified 25% of each class" in text
    config = json.loads((probe_page["out"] / "run" / "config.json").read_text())
    assert config["dataset"] == "digits" and "normalised per channel" in config["preprocessing"]
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "normalised per channel with the mean and std of the training split" in help_text
    assert "stratified 25% / 20%" in help_text


def test_summary_verdicts_agree_with_the_tables_and_link_to_their_sections(probe_page):
    page, out = probe_page["page"], probe_page["out"]
    anchors = dict(re.findall(r'<section id="(section-\d+)">\s*<h2>\d+\. (.*?)</h2>', page))
    table = page.split('id="table-checks"')[1].split("</table>")[0]
    links = re.findall(r'<a href="#(section-\d+)" title="([^"]*)">', table)
    checks = _table(out, "checks")
    assert len(checks) == 5 and len(links) == len(checks)  # every row links to its section
    for (target, title), row in zip(links, checks, strict=True):
        assert html.unescape(anchors[target]) == html.unescape(title) == row["section"]
    classifier = {row["split"]: row for row in _table(out, "classifier")}
    k = int(_table(out, "layers_all")[0].get("num_classes") or 10)
    accuracy = next(row for row in checks if row["check"] == "classifier accuracy")
    above = all(float(row["accuracy"]) > 1.25 / k for row in classifier.values())
    assert accuracy["verdict"] == ("holds" if above else "does not hold")
    assert above  # trained: well above chance
    # the frame verdict is neuralcollapse.frames' reading of the measured numbers
    frame_row = next(row for row in checks if row["check"].startswith("frame"))
    train = {row["measurement"]: row["train"] for row in _table(out, "frame_geometry")}
    labels = [schema.METRICS[key].label for key in schema.FRAME_KEYS]
    code = frames.classify_frame(*(float(train[label]) for label in labels), k)
    name = "neither frame" if code == frames.NEITHER else frames.FRAMES[code]
    assert frame_row["measured"].startswith(name) or (
        code == frames.CENTRED_ETF and "centring only" in frame_row["measured"]
    )
    assert frame_row["verdict"] == "unknown"  # the probe does not know the loss and bias


def test_build_run_report_recognises_a_one_epoch_run_as_a_snapshot(tmp_path):
    snapshot = write_fake_run(tmp_path / "once", epochs=1, measured=(0,))
    page = build_run_report([snapshot], tmp_path / "a").read_text()
    assert _titles(page) == list(SNAPSHOT_TITLES)
    assert "over training" not in page
    trained = write_fake_run(tmp_path / "trained", epochs=8, measured=(0, 1, 3, 7))
    page = build_run_report([trained], tmp_path / "b").read_text()
    assert "Neural collapse over training" in _titles(page)
    with pytest.raises(ValueError, match="not once"):
        build_snapshot_report(trained, tmp_path / "c")


def test_snapshot_of_a_training_loop_run_keeps_its_frame_verdict(tmp_path):
    # a fake MSE no-bias run whose means form an orthogonal frame, measured once
    run_dir = write_fake_run(tmp_path / "of", epochs=1, measured=(0,), frame="orthogonal")
    out = tmp_path / "out"
    build_snapshot_report(run_dir, out)
    row = next(row for row in _table(out, "checks") if row["check"].startswith("frame"))
    assert row["expected"].startswith("orthogonal frame (MSE")
    assert row["verdict"] in ("holds", "does not hold")
    assert row["verdict"] == (
        "holds" if row["measured"].startswith("orthogonal") else "does not hold"
    )
