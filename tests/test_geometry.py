"""Reference frames and Gram distances."""

import math

import pytest
import torch

from neuralcollapse.geometry import (
    etf_gram,
    normalized_gram_distance,
    of_etf_distance,
    orthogonal_frame,
    simplex_etf,
)


@pytest.mark.parametrize("k,d,seed", [(2, 2, None), (5, 5, 1), (7, 30, 2)])
def test_simplex_etf_has_unit_rows_and_cosine_minus_one_over_k_minus_one(k, d, seed):
    frame = simplex_etf(k, d, seed=seed)
    torch.testing.assert_close(frame @ frame.T, etf_gram(k))
    assert torch.allclose(frame.norm(dim=1), torch.ones(k, dtype=torch.float64))
    assert float(frame.sum(0).norm()) < 1e-12


def test_orthogonal_frame_is_orthonormal():
    frame = orthogonal_frame(6, 11, seed=3)
    torch.testing.assert_close(frame @ frame.T, torch.eye(6, dtype=torch.float64))


def test_of_etf_distance_matches_the_gram_distance():
    for k in (2, 3, 10, 100):
        measured = normalized_gram_distance(torch.eye(k), etf_gram(k))
        assert measured == pytest.approx(of_etf_distance(k), rel=1e-12)
        assert of_etf_distance(k) == pytest.approx(math.sqrt(2 - 2 * math.sqrt((k - 1) / k)))


def test_gram_distance_is_scale_invariant():
    g = torch.randn(5, 5, dtype=torch.float64)
    g = g @ g.T
    assert normalized_gram_distance(7.0 * g, g) < 1e-15


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: simplex_etf(1), "num_classes must be an integer >= 2"),
        (lambda: simplex_etf(5, 3), "dim >= num_classes"),
        (lambda: orthogonal_frame(4, 2), "dim >= num_classes"),
        (lambda: normalized_gram_distance(torch.zeros(2, 2), torch.eye(2)), "zero matrix"),
        (lambda: normalized_gram_distance(torch.eye(2), torch.eye(3)), "one shape"),
    ],
)
def test_bad_geometry_input_is_an_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
