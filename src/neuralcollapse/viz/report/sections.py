"""The report's sections: the summary, the panels, the frame gaps, the depth profile, the
sections of the measures that ride along (MSE decomposition, robustness, imbalance, deepnet
spectra, transfer to new classes, more classes than dimensions) and the tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from neuralcollapse.schema import SPECTRA_KEYS
from neuralcollapse.viz.agop_figures import (
    AGOP_TABLE_KEYS,
    agop_caption,
    agop_rows,
    has_agop,
    plot_agop,
)
from neuralcollapse.viz.code_figures import (
    CODE_TABLE_KEYS,
    code_rows,
    code_table_caption,
    codes_caption,
    has_codes,
    plot_codes,
)
from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.imbalance_figures import plot_imbalance_over_epochs
from neuralcollapse.viz.report.captions import (
    ALL_LAYERS_CAPTION,
    SUMMARY_CAPTION,
    _generalisation_table_caption,
    depth_caption,
    gaps_caption,
    imbalance_caption,
    mse_caption,
    overview_caption,
    panels_caption,
    panels_test_caption,
    robustness_caption,
)
from neuralcollapse.viz.report.checks import FRAME_CHECK, summary_checks
from neuralcollapse.viz.report.columns import table_column
from neuralcollapse.viz.report.findings import (
    Finding,
    depth_checks,
    generalisation_checks,
    mse_checks,
)
from neuralcollapse.viz.report.tables import (
    GENERALISATION_KEYS,
    IMBALANCE_TABLE_KEYS,
    MSE_TABLE_KEYS,
    _add_table,
    _final_columns,
    final_metric_rows,
    generalisation_rows,
    imbalance_rows,
    mse_rows,
    summary_rows,
)
from neuralcollapse.viz.report.values import (
    has_generalisation,
    has_imbalance,
    has_mse_terms,
    has_robustness,
)
from neuralcollapse.viz.robustness_figures import plot_runs_robustness
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, TrainingRun
from neuralcollapse.viz.spectra_figures import (
    has_spectra,
    plot_spectra,
    spectra_caption,
    spectra_rows,
)
from neuralcollapse.viz.style import check_epoch_axis
from neuralcollapse.viz.training_figures import (
    plot_depth_profile,
    plot_frame_gaps,
    plot_mse_terms,
    plot_training_panels,
)
from neuralcollapse.viz.transfer_figures import (
    TRANSFER_TABLE_KEYS,
    has_transfer,
    plot_transfer,
    transfer_caption,
    transfer_rows,
)

#: section titles of :func:`add_measure_sections`
MSE_TITLE = "MSE decomposition"


ROBUSTNESS_TITLE = "Robustness and generalisation"


#: the title of the robustness section when no run measured DeepFool: it shows only the
#: generalisation table, and says so
GENERALISATION_TITLE = "Generalisation: test accuracy and loss at the TPT and at the end"


IMBALANCE_TITLE = "Imbalanced classes"
SPECTRA_TITLE = "Deepnet spectra"
TRANSFER_TITLE = "Transfer to new classes"
CODES_TITLE = "More classes than dimensions (K > d + 1)"
AGOP_TITLE = "The AGOP mechanism: the feature ansatz by depth"


@dataclass(frozen=True)
class MeasureSection:
    """One section of :func:`add_measure_sections`: a figure and a table of one measure.

    The section is added when some run has the figure's or the table's data
    (``has_figure`` / ``has_table``); each part only when some run has its own data.
    Captions are functions of the runs, so each sentence is computed from what is drawn.
    ``trim`` sends the table through :func:`_add_table` (constant columns left out and
    named, ``missing`` says what "—" means); otherwise every column is shown and
    ``table_caption`` says all there is to say.
    """

    title: str
    intro: str
    name: str
    has_figure: Callable[[TrainingRun], bool]
    plot: Callable[..., Figure]
    figure_caption: Callable[..., str]
    has_table: Callable[[TrainingRun], bool]
    table_rows: Callable[[Sequence[TrainingRun]], list[dict]]
    table_caption: Callable[[Sequence[TrainingRun]], str]
    table_keys: Sequence[str]
    table_name: str | None = None
    trim: bool = True
    missing: str = "not computed"
    #: the title and introduction when no run has the figure's data (the section then shows
    #: only its table, and its title promises no more); default: ``title`` and ``intro``
    title_without_figure: str | None = None
    intro_without_figure: str | None = None

    def add_to(
        self,
        report: HtmlReport,
        runs: Sequence[TrainingRun],
        *,
        name_prefix: str,
        title_prefix: str,
        epoch_axis: str,
    ) -> str | None:
        """Add the section to ``report`` when some run has its data; its title, else None."""
        with_figure = any(self.has_figure(run) for run in runs)
        with_table = any(self.has_table(run) for run in runs)
        if not (with_figure or with_table):
            return None
        if with_figure:
            title, intro = self.title, self.intro
        else:
            title = self.title_without_figure or self.title
            intro = self.intro_without_figure or self.intro
        title = f"{title_prefix}{title}"
        section = report.section(title, intro)
        if with_figure:
            section.add_figure(
                f"{name_prefix}{self.name}",
                self.plot(runs, epoch_axis=epoch_axis),
                self.figure_caption(runs, epoch_axis=epoch_axis),
            )
        if with_table:
            name = f"{name_prefix}{self.table_name or self.name}"
            rows, caption = self.table_rows(runs), self.table_caption(runs)
            if self.trim:
                keys = list(self.table_keys)
                _add_table(section, name, rows, caption, keys, missing=self.missing)
            else:
                columns = [table_column(key) for key in self.table_keys]
                section.add_table(name, rows, caption, columns=columns)
        return title


#: the sections of :func:`add_measure_sections`, in page order
MEASURE_SECTIONS = (
    MeasureSection(
        title=MSE_TITLE,
        intro="Han, Papyan & Donoho (ICLR 2022) split the MSE loss of the penultimate features "
        "into a within-class term L_NC1, a class-mean term L_NC2/3 and the distance L_LS⊥ "
        "of the classifier from the least-squares one (docs/measures.md).",
        name="mse_terms",
        has_figure=has_mse_terms,
        plot=plot_mse_terms,
        figure_caption=mse_caption,
        has_table=has_mse_terms,
        table_rows=mse_rows,
        table_caption=lambda runs: (
            "The MSE terms of each MSE run at its last epoch where they were computed."
        ),
        table_keys=MSE_TABLE_KEYS,
    ),
    MeasureSection(
        title=ROBUSTNESS_TITLE,
        intro="What the terminal phase buys, per Papyan, Han & Donoho (2020): robustness to "
        "DeepFool perturbations and test accuracy (docs/robustness.md).",
        name="robustness",
        has_figure=has_robustness,
        plot=plot_runs_robustness,
        figure_caption=robustness_caption,
        # the generalisation table has a row for every run, so it comes with the section
        has_table=lambda run: has_robustness(run) or has_generalisation(run),
        table_rows=generalisation_rows,
        table_caption=_generalisation_table_caption,
        table_keys=GENERALISATION_KEYS,
        table_name="generalisation",
        trim=False,
        title_without_figure=GENERALISATION_TITLE,
        intro_without_figure="Papyan, Han & Donoho (2020, Table 1): test accuracy and loss at "
        "the first epoch with zero training error (TPT) and at the last epoch "
        "(docs/robustness.md). No run measured DeepFool robustness (neuralcollapse train "
        "--robustness), so this section has no robustness figure.",
    ),
    MeasureSection(
        title=IMBALANCE_TITLE,
        intro="Runs trained with step imbalance (--imbalance R --minority-classes K_B: the last "
        "K_B classes keep 1/R of the training images; the test split stays balanced; "
        "docs/imbalance.md).",
        name="imbalance",
        has_figure=has_imbalance,
        plot=plot_imbalance_over_epochs,
        figure_caption=imbalance_caption,
        has_table=has_imbalance,
        table_rows=imbalance_rows,
        table_caption=lambda runs: (
            "Group test accuracies and minority cosines of each imbalanced run at its last "
            "epoch (the cosine of the means at the last epoch the means were gathered)."
        ),
        table_keys=IMBALANCE_TABLE_KEYS,
    ),
    MeasureSection(
        title=SPECTRA_TITLE,
        intro="The Gauss-Newton matrix G of the loss over the tracked parameters "
        "(neuralcollapse train --track-spectra, on a fixed training subsample): Papyan (JMLR "
        "2020) traced its outliers to the C class means and C(C-1) cross-class means of the "
        "logit gradients, whose C^2 x C^2 Gram predicts them (docs/spectra.md).",
        name="spectra",
        has_figure=has_spectra,
        plot=plot_spectra,
        figure_caption=spectra_caption,
        has_table=has_spectra,
        table_rows=spectra_rows,
        table_caption=lambda runs: (
            "The spectral headline of each run at its last tracked epoch (spectra.jsonl "
            "holds every tracked epoch in full)."
        ),
        table_keys=("run", "epoch", *SPECTRA_KEYS),
        trim=False,
    ),
    MeasureSection(
        title=TRANSFER_TITLE,
        intro="Galanti, György & Hutter (ICLR 2022) tie transfer to neural collapse: when the "
        "penultimate features of classes the network never trained on collapse too (small "
        "CDNV), a nearest-class-centre classifier built from a few samples of each errs little. "
        "Runs of neuralcollapse train --transfer-classes withhold those classes from training "
        "and measure, at the tracked epochs, their CDNV, the k-way m-shot error and the bound "
        "(k−1)(12+6/m)·CDNV on it (docs/frontier.md).",
        name="transfer",
        has_figure=has_transfer,
        plot=plot_transfer,
        figure_caption=transfer_caption,
        has_table=has_transfer,
        table_rows=transfer_rows,
        table_caption=lambda runs: (
            "Each run with transfer data at its last tracked epoch with a few-shot error: the "
            "CDNV of the training classes (training split, post-ReLU penultimate features), "
            "then, on the withheld classes, their CDNV, the few-shot error (mean over the "
            "episodes), its standard error and the bound, as fractions; — : not measured at "
            "that epoch; not computed: the run says why (hover)."
        ),
        table_keys=TRANSFER_TABLE_KEYS,
        trim=False,
    ),
    MeasureSection(
        title=CODES_TITLE,
        intro="With more classes than the classifier's input has room for (K > d + 1: no "
        'simplex ETF fits in d dimensions), Jiang et al. ("Generalized neural collapse for a '
        'large number of classes", 2023) show that the normalised classifier rows tend to a '
        "softmax code, at low temperature the solution of the Tammes problem: K points on the "
        "sphere S^(d−1) whose smallest angle is as large as possible. Runs of neuralcollapse "
        "train --feature-dim D with D < K − 1 record, at the tracked epochs, the smallest angle "
        "of the classifier rows and of the centred class means and the means' one-vs-rest "
        "margin, and summary.json the best known angle for (K, d) (docs/frontier.md).",
        name="codes",
        has_figure=has_codes,
        plot=plot_codes,
        figure_caption=codes_caption,
        has_table=has_codes,
        table_rows=code_rows,
        table_caption=code_table_caption,
        table_keys=CODE_TABLE_KEYS,
        trim=False,
    ),
    MeasureSection(
        title=AGOP_TITLE,
        intro="Beaglehole, Súkeník, Mondelli & Belkin (NeurIPS 2024) trace deep neural collapse "
        "to the average gradient outer product (AGOP): by the neural feature ansatz each "
        "layer's W^T W is proportional to a power of the AGOP of the network at its input, so "
        "each layer keeps the directions the output depends on and within-class variability "
        "shrinks with depth. Runs of neuralcollapse train --track-agop N record at the tracked "
        "epochs the correlation of every linear layer's W^T W with its AGOP (and the AGOP's "
        "square root) on N fixed training samples (agop.jsonl; docs/frontier.md).",
        name="agop",
        has_figure=has_agop,
        plot=plot_agop,
        figure_caption=agop_caption,
        has_table=has_agop,
        table_rows=agop_rows,
        table_caption=lambda runs: (
            "Each linear layer of each run at the run's last measured epoch: the layer whose "
            "output it reads (— : the network's input), its input width, the ansatz "
            "correlations and the NC1 of its input (training split; — : not measured at that "
            "epoch). agop.jsonl holds every tracked epoch."
        ),
        table_keys=AGOP_TABLE_KEYS,
        trim=False,
    ),
)


def add_measure_sections(
    report: HtmlReport,
    runs: Sequence[TrainingRun],
    *,
    name_prefix: str = "",
    title_prefix: str = "",
    epoch_axis: str = "log",
) -> list[str]:
    """Add the sections of the per-epoch measures that ride along (docs/training.md), each
    only when some run has its data; returns the titles added.

    The sections are :data:`MEASURE_SECTIONS`:

    - "MSE decomposition" (some run has ``mse_*`` terms): :func:`plot_mse_terms` and the
      terms at the last epoch;
    - "Robustness and generalisation" (some run has ``deepfool_ratio``):
      :func:`plot_runs_robustness` and the generalisation table of every run; titled
      :data:`GENERALISATION_TITLE` when no run measured DeepFool but some has a summary.json
      ``generalisation`` entry (the table only);
    - "Imbalanced classes" (some run has ``minority_cosine_weights``):
      :func:`plot_imbalance_over_epochs` and the last values;
    - "Deepnet spectra" (some run has ``spectra.jsonl``): :func:`plot_spectra` and the
      headline of the last tracked epoch;
    - "Transfer to new classes" (some run has a ``transfer_error``; ``train
      --transfer-classes``): :func:`plot_transfer` and the values of the last tracked epoch;
    - "More classes than dimensions (K > d + 1)" (some run has a ``code_angle_weights``;
      ``train --feature-dim D`` with D < K - 1): :func:`plot_codes` and the values of the last
      tracked epoch.
    """
    check_epoch_axis(epoch_axis)
    added = []
    for spec in MEASURE_SECTIONS:
        title = spec.add_to(
            report, runs, name_prefix=name_prefix, title_prefix=title_prefix, epoch_axis=epoch_axis
        )
        if title is not None:
            added.append(title)
    return added


def add_training_sections(
    report: HtmlReport,
    runs: Sequence[TrainingRun],
    *,
    name_prefix: str = "",
    title_prefix: str = "",
    intro: str = "",
    epoch_axis: str = "log",
    summary_title: str | None = None,
    measures: bool = False,
    overview: bool = True,
) -> list[Finding]:
    """Append the summary, panels, frame gaps, depth profile and tables of ``runs`` to ``report``.

    Figure and table names get ``name_prefix`` so several groups of runs can share a report.
    The summary (table ``overview``) is a section of its own titled ``summary_title`` when
    given, else the first item of the panels' section; without ``overview`` there is no
    summary table (the caller shows the returned findings, e.g. with
    :func:`~neuralcollapse.viz.report.findings.add_findings_section`). With ``measures``, the
    sections of the per-epoch measures that ride along (:func:`add_measure_sections`: MSE
    decomposition, robustness and generalisation, imbalanced classes) come before the tables,
    each only when some run has its data.

    Returns
    -------
    The verdicts of every section added, each with the title of the section that shows it
    (:class:`~neuralcollapse.viz.report.findings.Finding`).
    """
    check_epoch_axis(epoch_axis)
    checks = summary_checks(runs)
    overview_section = None
    if overview and summary_title is not None:
        overview_section = report.section(
            f"{title_prefix}{summary_title}",
            "What each run shows, checked against the theory (docs/theory.md).",
        )
    section = report.section(f"{title_prefix}Neural collapse over training", intro)
    if overview and summary_title is None:
        overview_section = section
    if overview_section is not None:
        overview_section.add_table(
            f"{name_prefix}overview",
            [check.as_row() for check in checks],
            overview_caption(checks),
            columns=[
                table_column(key) for key in ("run", "check", "expected", "measured", "verdict")
            ],
        )
    section.add_figure(
        f"{name_prefix}training_panels",
        plot_training_panels(runs, epoch_axis=epoch_axis),
        panels_caption(runs, epoch_axis=epoch_axis),
    )
    if any("test" in run.splits for run in runs):
        section.add_figure(
            f"{name_prefix}training_panels_test",
            plot_training_panels(runs, split="test", epoch_axis=epoch_axis),
            panels_test_caption(runs, epoch_axis=epoch_axis),
        )
    has_pre = any(PENULTIMATE_PRE in run.layers for run in runs)
    gaps = report.section(f"{title_prefix}ETF or orthogonal frame: pre- and post-ReLU features")
    if has_pre or any(PENULTIMATE_POST in run.layers for run in runs):
        gaps.add_figure(
            f"{name_prefix}frame_gaps",
            plot_frame_gaps(runs, epoch_axis=epoch_axis),
            gaps_caption(runs, epoch_axis=epoch_axis),
        )
    frame_checks = [check for check in checks if check.check == FRAME_CHECK]
    findings = [Finding(section.title, c) for c in checks if c.check != FRAME_CHECK]
    findings += [Finding(gaps.title, check) for check in frame_checks]
    depth = report.section(f"{title_prefix}Depth-wise NC1 profile")
    findings += [Finding(depth.title, check) for check in depth_checks(runs)]
    depth.add_figure(
        f"{name_prefix}depth_profile",
        plot_depth_profile(runs, fit=True),
        depth_caption(runs, fit=True),
    )
    if measures:
        added = add_measure_sections(
            report, runs, name_prefix=name_prefix, title_prefix=title_prefix, epoch_axis=epoch_axis
        )
        by_title = {
            f"{title_prefix}{MSE_TITLE}": mse_checks,
            f"{title_prefix}{ROBUSTNESS_TITLE}": generalisation_checks,
            f"{title_prefix}{GENERALISATION_TITLE}": generalisation_checks,
        }
        for title in added:
            if title in by_title:
                findings += [Finding(title, check) for check in by_title[title](runs)]
    tables = report.section(f"{title_prefix}Tables")
    rows = summary_rows(runs)
    _add_table(
        tables,
        f"{name_prefix}summary",
        rows,
        SUMMARY_CAPTION,
        list(rows[0]),
        missing="not computed; for the TPT epoch: zero training error not reached",
    )
    all_rows = final_metric_rows(runs)
    _add_table(
        tables,
        f"{name_prefix}final_metrics",
        all_rows,
        ALL_LAYERS_CAPTION.replace("final_metrics", f"{name_prefix}final_metrics"),
        _final_columns(all_rows),
    )
    return findings
