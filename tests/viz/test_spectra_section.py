"""The report's deepnet-spectra section reads spectra.jsonl (train --track-spectra)."""

from __future__ import annotations

import json

from neuralcollapse.cli import main
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.spectra_figures import spectra_caption, spectra_rows

COMMON = [
    "train",
    "--dataset",
    "digits",
    "--arch",
    "mlp",
    "--width",
    "16",
    "--depth",
    "2",
    "--epochs",
    "2",
    "--track",
    "every",
    "--no-progress",
    "--seed",
    "1",
]


def test_a_run_with_spectra_gets_the_section_and_one_without_does_not(tmp_path):
    with_spectra, without = tmp_path / "spectra", tmp_path / "plain"
    assert main([*COMMON, "--track-spectra", "100", "--out", str(with_spectra)]) == 0
    assert main([*COMMON, "--out", str(without)]) == 0
    run = load_run(with_spectra)
    summaries = [json.loads(line) for line in (with_spectra / "spectra.jsonl").open()]
    assert [row["epoch"] for row in run.spectra] == [row["epoch"] for row in summaries] == [1, 2]
    caption = spectra_caption([run])
    last = summaries[-1]
    assert f"{last['outliers']['count']} eigenvalues above the largest log-gap" in caption
    assert f"C = {last['num_classes']}" in caption and "epoch 2" in caption
    # the SLQ density is stored with its error, and the caption says what is drawn below
    density = last["density"]
    assert len(density["grid"]) == len(density["density"]) == len(density["stderr"]) == 200
    assert min(density["density"]) >= 0 and density["probes"] == 4
    assert len(density["quadrature_error"]) == 200 and min(density["quadrature_error"]) >= 0
    assert "stochastic Lanczos quadrature (4 probes" in caption
    (row,) = spectra_rows([run])
    assert row["spectra_outliers"] == last["outliers"]["count"]
    assert row["spectra_top_eigenvalue"] == last["top_eigenvalues"][0]
    assert main(["report", str(with_spectra), "--out", str(tmp_path / "r1")]) == 0
    assert main(["report", str(without), "--out", str(tmp_path / "r2")]) == 0
    page = (tmp_path / "r1" / "report.html").read_text()
    assert "Deepnet spectra" in page and (tmp_path / "r1" / "figures" / "spectra.png").is_file()
    assert "Deepnet spectra" not in (tmp_path / "r2" / "report.html").read_text()
    assert spectra_rows([load_run(without)]) == []
