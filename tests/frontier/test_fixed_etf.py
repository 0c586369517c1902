"""The fixed simplex-ETF classifier."""

from __future__ import annotations

import pytest
import torch

from neuralcollapse.frontier.fixed_etf import FixedETFClassifier, simplex_etf_rows
from neuralcollapse.geometry import etf_gram


@pytest.mark.parametrize(("k", "d", "seed"), [(2, 1, None), (10, 9, None), (10, 64, 3), (5, 5, 0)])
def test_weight_is_a_simplex_etf(k, d, seed):
    head = FixedETFClassifier(d, k, seed=seed, dtype=torch.float64)
    torch.testing.assert_close(head.weight @ head.weight.T, etf_gram(k))
    assert head.weight.shape == (k, d)


def test_weight_is_a_buffer_saved_but_never_trained():
    head = FixedETFClassifier(8, 4, bias=True)
    assert [name for name, _ in head.named_parameters()] == ["bias"]
    assert "weight" in head.state_dict()
    before = head.weight.clone()
    features = torch.randn(16, 8, requires_grad=True)
    optimiser = torch.optim.SGD(head.parameters(), lr=1.0)
    torch.nn.functional.cross_entropy(head(features), torch.arange(16) % 4).backward()
    optimiser.step()
    assert torch.equal(head.weight, before)
    assert features.grad is not None and float(features.grad.abs().sum()) > 0
    restored = FixedETFClassifier(8, 4, bias=True, seed=5)
    restored.load_state_dict(head.state_dict())
    assert torch.equal(restored.weight, head.weight)


def test_logits_match_an_independent_product_and_normalisation():
    head = FixedETFClassifier(6, 3, scale=2.0, normalize_features=True, dtype=torch.float64)
    x = torch.randn(5, 6, dtype=torch.float64)
    expected = 2.0 * (x / x.norm(dim=1, keepdim=True)) @ simplex_etf_rows(3, 6).T
    torch.testing.assert_close(head(x), expected)
    # scale invariance of the decision with normalised features
    torch.testing.assert_close(head(7.0 * x).argmax(1), head(x).argmax(1))


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match=r"in_features \(d\) must be an integer >= 9"):
        FixedETFClassifier(5, 10)
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        FixedETFClassifier(5, 3, scale=0)
    with pytest.raises(ValueError, match="last dimension"):
        FixedETFClassifier(5, 3)(torch.randn(2, 4))
