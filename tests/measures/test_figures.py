"""The figures of the measures build, carry the data, and survive empty input."""

import io

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse.measures import fit_separation_law
from neuralcollapse.viz.measures_figures import depth_profile_figure, mse_terms_figure


def _png_bytes(figure: Figure) -> bytes:
    stream = io.BytesIO()
    figure.savefig(stream, format="png")
    return stream.getvalue()


def test_depth_profile_has_the_points_and_the_fitted_line():
    fit = fit_separation_law({"a": 4.0, "b": 1.9, "c": 1.1, "d": 0.45})
    figure = depth_profile_figure(fit)
    assert isinstance(figure, Figure)
    profile = figure.axes[0]
    points, line = profile.get_lines()[:2]
    assert np.allclose(points.get_ydata(), fit.fuzziness)
    assert np.allclose(line.get_ydata(), fit.fitted(line.get_xdata()))
    assert profile.get_yscale() == "log"
    assert f"{fit.rho:.3g}" in profile.get_legend().get_texts()[1].get_text()
    assert _png_bytes(figure).startswith(b"\x89PNG")


def test_mse_terms_over_epochs_and_with_nothing_to_plot():
    rows = [
        {
            "epoch": e,
            "mse_loss": 1 / e,
            "mse_nc1": 0.5 / e,
            "mse_nc2_3": 0.4 / e,
            "mse_ls_perp": 0.1 / e**2,
        }
        for e in (1, 2, 5, 10)
    ]
    rows.append({"epoch": 20, "mse_loss": None})
    figure = mse_terms_figure(rows)
    panel = figure.axes[0]
    assert len(panel.get_lines()) == 4
    assert panel.get_xscale() == "log" and panel.get_yscale() == "log"
    assert np.allclose(panel.get_lines()[3].get_ydata(), [0.1, 0.025, 0.004, 0.001])
    empty = mse_terms_figure([{"epoch": 1}])
    assert "no MSE terms" in empty.axes[0].texts[0].get_text()
    assert _png_bytes(empty).startswith(b"\x89PNG")
