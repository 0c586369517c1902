"""Naming the frame of a set of class means: one vocabulary, one tolerance rule.

docs/theory.md, "Telling an ETF from an orthogonal frame". Three measurements of the class
means ``mu_1..mu_K`` (the metrics of :data:`neuralcollapse.schema.FRAME_KEYS`) decide:

- the OF gap ``|| G/||G||_F - I/sqrt(K) ||_F`` of the uncentred Gram ``G = [<mu_k, mu_k'>]``;
- the global-mean ratio ``||mu_G|| / mean_k ||mu_k||``;
- the ETF gap ``|| G_c/||G_c||_F - (I - J)/sqrt(K-1) ||_F`` of the centred means' Gram.

An exact orthogonal frame reads ``(0, 1/sqrt(K), 0)`` and an exact simplex ETF
``(sqrt(2 - 2 sqrt((K-1)/K)), 0, 0)`` (:func:`frame_levels`, from
:func:`neuralcollapse.schema.theory_value`). Centring an equal-norm OF gives a simplex ETF,
so the ETF gap alone cannot tell the two apart; the OF gap and the ratio can.

**Vocabulary** (:data:`FRAMES`; the UFM's closed forms use the same codes):

- :data:`ORTHOGONAL` ``"of"``: all three values near the OF's (MSE without a bias; Tirer &
  Bruna 2022, Thm 3.1);
- :data:`ETF` ``"etf"``: all three near the simplex ETF's (CE, or MSE with a free bias;
  Papyan et al. 2020, Zhu et al. 2021);
- :data:`CENTRED_ETF` ``"between"``: only the ETF gap near 0: the centred means form a simplex
  ETF and the global mean is left free (a penalised bias: ``Z = a(I - J) + mJ``, between the
  ETF, ``m = 0``, and the OF);
- :data:`NEITHER` ``"other"``: none of these;
- :data:`ZERO` ``"zero"``: the class means vanish (decided by the caller from their norm: the
  three values are then undefined).

**Tolerance rule** (:func:`frame_tolerances`): a value is near a frame's when it is within
``tolerance`` times the distance between the two frames' values of that measurement, i.e. the
two gaps within ``tolerance * sqrt(2 - 2 sqrt((K-1)/K))`` and the ratio within
``tolerance / sqrt(K)``. The rule scales with K, and for ``tolerance < 1/2`` no point is near
both frames. Trained networks approach a frame only in a long terminal phase and are read with
:data:`NETWORK_TOLERANCE` (a quarter of the way); solutions of the unconstrained features model
at a numerical minimum with :data:`SOLVER_TOLERANCE`.
"""

from __future__ import annotations

from neuralcollapse import schema

#: the frame codes (see the module docstring)
ORTHOGONAL, ETF, CENTRED_ETF, NEITHER, ZERO = "of", "etf", "between", "other", "zero"
#: every frame code and how text names it
FRAMES: dict[str, str] = {
    ORTHOGONAL: "orthogonal frame",
    ETF: "simplex ETF",
    CENTRED_ETF: "centred ETF",
    NEITHER: "neither",
    ZERO: "zero",
}
#: the tolerance (a fraction of the distance between the two frames' values) for trained networks
NETWORK_TOLERANCE = 0.25
#: the tolerance for solutions of the unconstrained features model at a numerical minimum (for
#: K = 4: 1.04e-3 in the gaps, 1e-3 in the ratio)
SOLVER_TOLERANCE = 2e-3


def _check_tolerance(tolerance: float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"tolerance must be a number; got {type(tolerance).__name__}")
    if not 0 < tolerance < 0.5:
        raise ValueError(
            f"tolerance must lie in (0, 1/2) (a fraction of the distance between the two "
            f"frames, below one half so that no point is near both); got {tolerance!r}"
        )
    return float(tolerance)


def _check_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int; got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"a frame needs at least 2 classes; got K = {num_classes}")
    return num_classes


def frame_levels(num_classes: int) -> dict[str, tuple[float, float, float]]:
    """(OF gap, global-mean ratio, ETF gap) of the exact orthogonal frame and simplex ETF.

    ``{ORTHOGONAL: (0, 1/sqrt(K), 0), ETF: (sqrt(2 - 2 sqrt((K-1)/K)), 0, 0)}``, read from the
    schema's theory values of :data:`neuralcollapse.schema.FRAME_KEYS`.
    """
    k = _check_classes(num_classes)
    return {
        frame: tuple(  # type: ignore[misc]
            float(schema.theory_value(key, code, k) or 0.0) for key in schema.FRAME_KEYS
        )
        for frame, code in ((ORTHOGONAL, "orthogonal"), (ETF, "etf"))
    }


def frame_tolerances(num_classes: int, tolerance: float = NETWORK_TOLERANCE) -> tuple[float, float]:
    """(tolerance of the two gaps, tolerance of the ratio) for K classes.

    ``tolerance`` times the distance between the two frames' OF gaps,
    ``sqrt(2 - 2 sqrt((K-1)/K))``, and between their ratios, ``1/sqrt(K)``.
    """
    tolerance = _check_tolerance(tolerance)
    levels = frame_levels(num_classes)
    gap_distance = abs(levels[ETF][0] - levels[ORTHOGONAL][0])
    ratio_distance = abs(levels[ETF][1] - levels[ORTHOGONAL][1])
    return tolerance * gap_distance, tolerance * ratio_distance


def classify_frame(
    of_gap: float,
    ratio: float,
    etf_gap: float,
    num_classes: int,
    *,
    tolerance: float = NETWORK_TOLERANCE,
) -> str:
    """The frame code of class means with these OF gap, global-mean ratio and ETF gap.

    :data:`ORTHOGONAL` or :data:`ETF` when all three values are within the tolerance of that
    frame's (:func:`frame_tolerances`); :data:`CENTRED_ETF` when only the ETF gap is within the
    gap tolerance of 0; otherwise :data:`NEITHER`. A NaN value is near nothing.
    """
    gap_tol, ratio_tol = frame_tolerances(num_classes, tolerance)
    levels = frame_levels(num_classes)
    values = (float(of_gap), float(ratio), float(etf_gap))
    tolerances = (gap_tol, ratio_tol, gap_tol)
    for frame in (ORTHOGONAL, ETF):
        near = zip(values, levels[frame], tolerances, strict=True)
        if all(abs(value - level) <= tol for value, level, tol in near):
            return frame
    if abs(values[2] - levels[ETF][2]) <= gap_tol:
        return CENTRED_ETF
    return NEITHER


def frame_matches(predicted: str, measured: str) -> bool:
    """Whether a measured frame satisfies a predicted one.

    Equal codes match; a :data:`CENTRED_ETF` prediction (only the centred means are fixed) is
    also met by an ETF or an orthogonal frame, whose centred means are a simplex ETF.
    """
    for name, code in (("predicted", predicted), ("measured", measured)):
        if code not in FRAMES:
            raise ValueError(f"{name} must be a frame code {sorted(FRAMES)}; got {code!r}")
    if predicted == CENTRED_ETF:
        return measured in (ETF, ORTHOGONAL, CENTRED_ETF)
    return measured == predicted


def predicted_frame(loss: str | None, bias: bool | None) -> tuple[str | None, str]:
    """The frame theory predicts for the penultimate class means of a trained network, and why.

    MSE without a classifier bias: an orthogonal frame (Tirer & Bruna 2022). Cross-entropy
    without a bias: a simplex ETF whose global mean vanishes (Zhu et al. 2021). With a bias
    (CE or MSE): the centred means form a simplex ETF and the bias absorbs the global mean
    (Papyan et al. 2020). None when the loss or bias is unknown or not covered.
    """
    if loss is None or bias is None:
        missing = [name for name, v in (("loss", loss), ("bias", bias)) if v is None]
        return None, f"unknown: config.json does not record the {' and '.join(missing)}"
    if loss == "mse" and not bias:
        return ORTHOGONAL, "orthogonal frame (MSE, no classifier bias; Tirer & Bruna 2022)"
    if loss == "ce" and not bias:
        return ETF, "simplex ETF, global mean 0 (CE, no classifier bias; Zhu et al. 2021)"
    if loss in ("ce", "mse") and bias:
        return (
            CENTRED_ETF,
            f"simplex ETF of the centred means ({loss.upper()} with a classifier bias, which "
            "absorbs the global mean)",
        )
    return None, f"unknown: no theory here for loss {loss!r}"


def tolerance_rule(tolerance: float) -> str:
    """One sentence that states the rule, for captions."""
    return (
        f"a value is near a frame's when it is within {_check_tolerance(tolerance):g} of the "
        "distance between the two frames' values"
    )


__all__ = [
    "CENTRED_ETF",
    "ETF",
    "FRAMES",
    "NEITHER",
    "NETWORK_TOLERANCE",
    "ORTHOGONAL",
    "SOLVER_TOLERANCE",
    "ZERO",
    "classify_frame",
    "frame_levels",
    "frame_matches",
    "frame_tolerances",
    "predicted_frame",
    "tolerance_rule",
]
