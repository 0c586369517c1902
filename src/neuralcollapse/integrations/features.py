"""Turn what a module outputs into an (N, d) feature matrix with (N,) labels.

The conventions researchers use, one place:

- a tuple, list, or Hugging Face ``ModelOutput`` is reduced to its first tensor (a
  transformer block returns ``(hidden_states, ...)``; ``select=`` overrides this);
- conv maps (B, C, H, W) are averaged over space to (B, C) (Papyan et al.'s per-layer NC on
  conv nets keeps the dimension at C), any other 4-D-or-more output is flattened;
- with one label per sample, a sequence output (B, T, d) is mean-pooled over the positions
  that ``attention_mask`` keeps (over all T without one);
- with one label per token (labels (B, T)), a (B, T, d) output is flattened to tokens, and
  positions whose label is the ignore index (-100, Hugging Face's convention) or whose
  ``attention_mask`` is 0 are dropped;
- ``shift_labels=True`` is next-token collapse (Wu & Papyan, "Linguistic collapse", NeurIPS
  2024): the feature at position t is labelled by the token at t + 1 (Hugging Face causal-LM
  ``labels`` are unshifted: the model shifts them inside its loss), so the last position of
  each sequence has no label and is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: Hugging Face's label for positions that carry no target
IGNORE_INDEX = -100

Select = Callable[[object], torch.Tensor]


def first_tensor(output: object) -> torch.Tensor:
    """The first tensor of a module output (a tensor itself, a tuple/list, a ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):  # ModelOutput is an OrderedDict of its non-None fields
        values = list(output.values())
    elif isinstance(output, (tuple, list)):
        values = list(output)
    else:
        values = []
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(
        f"the module returned {type(output).__name__}, which holds no tensor; pass select= "
        "a function that picks the feature tensor from that output"
    )


@dataclass(frozen=True)
class LabelLayout:
    """How one batch's labels line up with the positions of a sequence output.

    labels : (B,) per sample, or (B, T) per token (already shifted when next-token).
    token_mask : (B, T) bool, the positions that are kept (token labels only), else None.
    attention_mask : (B, T) for pooling sequence outputs with per-sample labels, or None.
    shift : next-token labelling: features at positions 0..T-2 are used.
    """

    labels: torch.Tensor
    token_mask: torch.Tensor | None
    attention_mask: torch.Tensor | None
    shift: bool

    @property
    def per_token(self) -> bool:
        return self.token_mask is not None

    def kept_labels(self) -> torch.Tensor:
        """The labels of the rows :meth:`features` returns, in the same order."""
        if self.token_mask is None:
            return self.labels
        return self.labels[self.token_mask]

    def features(self, output: torch.Tensor, layer: str) -> torch.Tensor:
        """The (rows, d) features of one module output for these labels."""
        batch = self.labels.shape[0]
        if output.dim() == 0 or output.shape[0] != batch:
            raise ValueError(
                f"layer {layer!r} produced an output of shape {tuple(output.shape)} for a batch "
                f"of {batch}; its first dimension must be the batch (pass select= to pick or "
                "reshape the features)"
            )
        if self.per_token:
            return self._token_features(output, layer)
        if output.dim() == 4:  # (B, C, H, W) conv maps: spatial mean
            return output.mean(dim=(2, 3), dtype=pooling_dtype(output.dtype))
        if output.dim() == 3:  # (B, T, d) sequence, one label per sample: masked mean
            return _masked_mean(output, self.attention_mask)
        return output.reshape(batch, -1)

    def _token_features(self, output: torch.Tensor, layer: str) -> torch.Tensor:
        positions = self.token_mask.shape[1] + (1 if self.shift else 0)
        if output.dim() != 3 or output.shape[1] != positions:
            raise ValueError(
                f"token labels of shape {tuple(self.token_mask.shape)} need a (batch, "
                f"{positions}, d) output at layer {layer!r}; got {tuple(output.shape)}"
            )
        if self.shift:
            output = output[:, :-1]
        return output[self.token_mask]


def pooling_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a mean over positions is taken in: float64 for 16-bit features.

    A float16 / bfloat16 mean rounded back to 16 bits would lose what the metrics keep
    (they accumulate in float64): the pooled features are the exact means of the values the
    layer produced, to float64 precision (issue 21). Wider dtypes pool in their own.
    """
    return torch.float64 if dtype in (torch.float16, torch.bfloat16) else dtype


def _masked_mean(output: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return output.mean(dim=1, dtype=pooling_dtype(output.dtype))
    output = output.to(pooling_dtype(output.dtype))
    weights = attention_mask.to(output.dtype).unsqueeze(-1)
    return (output * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)


def label_layout(
    labels: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    shift_labels: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> LabelLayout:
    """Line up one batch's labels with its sequence positions (see the module docstring)."""
    if labels.dim() == 1:
        if shift_labels:
            raise ValueError(
                "shift_labels=True needs one label per token, (batch, length); these labels are "
                f"{tuple(labels.shape)}: drop shift_labels for one label per sample"
            )
        return LabelLayout(labels, None, attention_mask, False)
    if labels.dim() != 2:
        raise ValueError(
            f"labels must be (batch,) or (batch, length) for token labels; got shape "
            f"{tuple(labels.shape)}"
        )
    if attention_mask is not None and attention_mask.shape != labels.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} and token labels "
            f"{tuple(labels.shape)} must have the same shape"
        )
    mask = None if attention_mask is None else attention_mask.bool()
    if shift_labels:
        labels = labels[:, 1:]
        if mask is not None:  # both the position read and the token predicted must be real
            mask = mask[:, :-1] & mask[:, 1:]
    keep = labels != ignore_index
    if mask is not None:
        keep = keep & mask
    return LabelLayout(labels, keep, None, shift_labels)
