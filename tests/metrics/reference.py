"""An independent, dense, deliberately naive implementation of every metric (tests only).

Forms the full d x d covariances, the pseudo-inverse of Sigma_B, and the full K x K Gram
matrices, exactly as the definitions in docs/theory.md read.
"""

import math

import torch


def _cosines_off_diagonal(rows: torch.Tensor) -> torch.Tensor:
    unit = rows / rows.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    mask = ~torch.eye(rows.shape[0], dtype=torch.bool)
    return cos[mask]


def _gram_gap(gram: torch.Tensor, target: torch.Tensor) -> float:
    return float((gram / gram.norm() - target / target.norm()).norm())


def dense_metrics(features, labels, weights=None, bias=None, num_classes=None):
    h = torch.as_tensor(features).to(torch.float64)
    y = torch.as_tensor(labels).long()
    k = int(y.max()) + 1 if num_classes is None else num_classes
    n = h.shape[0]
    means = torch.stack([h[y == c].mean(0) for c in range(k)])
    global_mean = means.mean(0)
    centred = means - global_mean
    residual = h - means[y]
    sigma_w = residual.T @ residual / n
    sigma_b = centred.T @ centred / k
    out = {
        "nc1": float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b))) / k,
        "nc1_trace_ratio": float(torch.trace(sigma_w) / torch.trace(sigma_b)),
        "within_class_variance": float(torch.trace(sigma_w)),
        "between_class_variance": float(torch.trace(sigma_b)),
    }
    variances = torch.stack([((h[y == c] - means[c]) ** 2).sum(1).mean() for c in range(k)])
    cdnv = [
        float((variances[a] + variances[b]) / (2 * (means[a] - means[b]).pow(2).sum()))
        for a in range(k)
        for b in range(a + 1, k)
    ]
    out["cdnv"] = sum(cdnv) / len(cdnv)
    identity = torch.eye(k, dtype=torch.float64)
    etf = identity - 1.0 / k

    def frame(rows, suffix, centred_rows):
        norms = rows.norm(dim=1)
        out[f"equinorm_{suffix}"] = float(norms.std() / norms.mean())
        cos = _cosines_off_diagonal(rows)
        out[f"equiangular_{suffix}"] = float(cos.std())
        out[f"maxangle_{suffix}"] = float((cos + 1.0 / (k - 1)).abs().mean())
        if centred_rows:
            out[f"etf_gap_{suffix}"] = _gram_gap(rows @ rows.T, etf)

    frame(centred, "means", True)
    out["of_gap_means"] = _gram_gap(means @ means.T, identity)
    out["global_mean_ratio"] = float(global_mean.norm() / means.norm(dim=1).mean())
    dist = torch.cdist(h, means)
    ncc = dist.argmin(1)
    out["ncc_accuracy"] = float((ncc == y).double().mean())
    if weights is not None:
        w = torch.as_tensor(weights).to(torch.float64)
        frame(w, "weights", False)
        out["etf_gap_weights"] = _gram_gap(w @ w.T, etf)
        out["of_gap_weights"] = _gram_gap(w @ w.T, identity)
        out["self_duality"] = float((w.T / w.norm() - centred.T / centred.norm()).norm() ** 2)
        out["self_duality_uncentred"] = float((w.T / w.norm() - means.T / means.norm()).norm() ** 2)
        logits = h @ w.T
        if bias is not None:
            logits = logits + torch.as_tensor(bias).to(torch.float64)
        prediction = logits.argmax(1)
        out["accuracy"] = float((prediction == y).double().mean())
        out["ncc_mismatch"] = float((prediction != ncc).double().mean())
    assert all(math.isfinite(v) for v in out.values())
    return out


def assert_same_metrics(actual: dict, expected: dict, rel: float, abs: float = 0.0) -> None:
    """The same keys, None in the same places, and the other values equal to tolerance."""
    import pytest

    assert set(actual) == set(expected)
    missing = {key for key, value in expected.items() if value is None}
    assert {key for key, value in actual.items() if value is None} == missing
    numbers = {key: value for key, value in actual.items() if key not in missing}
    wanted = {key: value for key, value in expected.items() if key not in missing}
    assert numbers == pytest.approx(wanted, rel=rel, abs=abs)
