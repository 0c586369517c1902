"""A check before the second pass that the arrays which cannot be tiled fit in memory.

Everything pairwise is tiled, and the data streams a chunk at a time; what remains whole
are K x d float64 arrays (the centred class means, the classifier, a reference's means)
and, per chunk, K scores per row. With a vocabulary of classes these are hundreds of MB
each; failing before the long pass with a clear message beats being killed during it.
"""

from __future__ import annotations

import torch


def available_bytes(device: torch.device) -> int | None:
    """Memory still free on ``device`` (MemAvailable on Linux CPU), or None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_untiled_memory(
    num_classes: int,
    dim: int,
    device: torch.device,
    *,
    weights: bool,
    reference: bool,
    chunk_rows: int,
) -> None:
    """Raise a ValueError naming the arrays if those that cannot be tiled will not fit."""
    matrix = num_classes * dim * 8  # one K x d float64 array
    needs = {"the factorisation of the centred class means (a K x d copy)": matrix}
    if weights:
        needs["the classifier W in float64 (K x d)"] = matrix
    if reference:
        needs["the reference's centred means and their factorisation (2 x K x d)"] = 2 * matrix
    needs["the logits and nearest-centre scores of a chunk (a few x rows x K)"] = (
        4 * chunk_rows * num_classes * 8
    )
    total = sum(needs.values())
    free = available_bytes(device)
    if free is None or total <= free:
        return
    listed = "; ".join(f"{name}: {size / 2**20:,.0f} MB" for name, size in needs.items())
    raise ValueError(
        f"K = {num_classes:,} classes in d = {dim:,} dimensions need about "
        f"{total / 2**30:.2f} GB for arrays that cannot be tiled ({listed}), but only "
        f"{free / 2**30:.2f} GB is free on {device}. Measure without the classifier "
        "(weights=None) or the reference, on a device with more memory, or on fewer classes"
    )
