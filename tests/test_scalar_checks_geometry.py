"""The reference frames check their scalar arguments with the shared checker (issue 13):
NumPy integers count as integers, ``True`` and floats are not counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import etf_gram, of_etf_distance, orthogonal_frame, simplex_etf


def test_numpy_integers_give_the_same_frames_as_python_ints():
    assert torch.equal(simplex_etf(np.int64(4)), simplex_etf(4))
    assert torch.equal(
        simplex_etf(np.int64(4), np.int32(6), seed=np.int64(3)), simplex_etf(4, 6, seed=3)
    )
    assert torch.equal(orthogonal_frame(np.int64(3), np.int64(5)), orthogonal_frame(3, 5))
    assert torch.equal(etf_gram(np.int16(5)), etf_gram(5))
    assert of_etf_distance(np.int64(4)) == of_etf_distance(4)


@pytest.mark.parametrize("function", [simplex_etf, orthogonal_frame, etf_gram, of_etf_distance])
@pytest.mark.parametrize("bad", [True, float("nan"), 4.0, "4"])
def test_num_classes_must_be_an_integer(function, bad):
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 2 .*; got "):
        function(bad)


@pytest.mark.parametrize("function", [simplex_etf, orthogonal_frame])
def test_dim_and_seed_are_checked(function):
    with pytest.raises(ValueError, match=r"^dim must be an integer >= 4 .*or None"):
        function(4, True)
    with pytest.raises(ValueError, match=r"^dim must be an integer >= 4 .*; got nan"):
        function(4, float("nan"))
    with pytest.raises(ValueError, match=r"^seed must be an integer, or None .*; got True"):
        function(4, seed=True)
    with pytest.raises(ValueError, match=r"^seed must be an integer, or None .*; got 1.5"):
        function(4, seed=1.5)
