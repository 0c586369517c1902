from pathlib import Path

import pytest

from .fake_runs import write_fake_run


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    return write_fake_run(tmp_path / "run_mse")


def _two_runs(root: Path) -> list[Path]:
    """An MSE run without bias collapsing to an orthogonal frame, and a CE run with a bias
    collapsing to a simplex ETF (what the theory predicts for each)."""
    return [
        write_fake_run(root / "run_mse"),
        write_fake_run(
            root / "run_ce", epochs=8, measured=(1, 3, 7), loss="ce", bias=True, frame="etf"
        ),
    ]


@pytest.fixture
def two_fake_runs(tmp_path: Path) -> list[Path]:
    return _two_runs(tmp_path)


@pytest.fixture(scope="session")
def built_report(tmp_path_factory) -> dict:
    """A report built once from two fake runs (building one takes a few seconds)."""
    from neuralcollapse.viz.report import build_run_report

    root = tmp_path_factory.mktemp("built_report")
    runs = _two_runs(root)
    page = build_run_report(runs, root / "out")
    return {"runs": runs, "out": root / "out", "page": page}
