"""The nearest-class-centre (NCC) rule, ``argmin_k ||h - mu_k||``, a chunk of residuals at a time.

NC4 (Papyan, Han & Donoho, PNAS 2020) compares the classifier's decisions with this rule.
The class means that decide may be those of the measured data or, for held-out data,
those of a *reference* (the training set): NCC accuracy and NC4 on a test set are
meant with the training means (Papyan et al. Fig. 7 and 8).

Scoring: ``argmin_k ||h - mu_k||^2 = argmax_k (2 (h - mu_G).m_k - ||m_k||^2)`` with the
centred means ``m_k`` of the deciding set. When the measured data decides and its means
span r < d dimensions, the scores are taken in the r coordinates of that span.

Most samples need no scores at all: a sample closer to its own class's (deciding) mean
than half the distance from that mean to the nearest other one is nearest to its own
centre (triangle inequality). Near collapse that is almost every sample, which removes
the O(N K r) score product.
"""

from __future__ import annotations

import torch

from neuralcollapse.metrics.pairwise import check_tile_size, nearest_row_distance


class NearestCentreRule:
    """NCC decisions for residual chunks ``r_i = h_i - mu_{y_i}`` of the measured data.

    Parameters
    ----------
    own : MeanGeometry of the measured data (the means the residuals are taken around).
    deciding : MeanGeometry whose means decide; ``own`` itself (default) or a reference's.
    tile_size : tile side for the K x K nearest-neighbour pass.
    """

    def __init__(self, own, deciding=None, tile_size: int | None = None) -> None:
        self.own = own
        self.deciding = own if deciding is None else deciding
        self.held_out = deciding is not None and deciding is not own
        num_classes, dim = own.centred.shape
        rank = own.basis.shape[1]
        # in the coordinates of the span of the means when that is smaller than d (K <= d);
        # when K > d the span is all of R^d and the centred means serve as they are
        self.in_span = not self.held_out and rank < dim
        centres = own.centred_coordinates() if self.in_span else self.deciding.centred
        self.centres = centres
        self.squared_norms = torch.linalg.vector_norm(centres, dim=1).square_()  # no K x d copy
        self.own_radius = 0.5 * nearest_row_distance(centres, check_tile_size(tile_size))
        # h - mu_G' = r + m_y + (mu_G - mu_G') for the deciding global mean mu_G'
        self.global_shift = own.global_mean - self.deciding.global_mean

    def predict(
        self,
        residual: torch.Tensor,
        within: torch.Tensor,
        scaled: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """``argmin_k ||h_i - mu_k||`` for a chunk, scoring only samples not certified.

        ``residual`` holds ``r_i`` (rows x d), ``within`` ``||r_i||^2``, ``scaled``
        ``S^-1 V^T r_i`` (the NC1 projection, reused for coordinates in the span).
        """
        prediction = labels.clone()
        if self.held_out:
            # h - mu'_G, and the squared distance to the deciding mean of the sample's class
            shifted = self.own.centred[labels].add_(residual).add_(self.global_shift)
            gap = shifted - self.deciding.centred[labels]
            distance_sq = torch.linalg.vector_norm(gap, dim=1).square_()
            del gap
        else:
            distance_sq = within
        uncertain = torch.nonzero(distance_sq >= self.own_radius[labels] ** 2).flatten()
        if not uncertain.numel():
            return prediction
        uncertain_labels = labels[uncertain]
        if self.held_out:
            coordinates = shifted[uncertain]
        elif self.in_span:
            # z = V^T (h - mu_G) = S (S^-1 V^T r) + c_y
            coordinates = torch.addcmul(
                self.centres[uncertain_labels], scaled[uncertain], self.own.singular_values
            )
        else:
            coordinates = residual[uncertain] + self.centres[uncertain_labels]
        scores = (coordinates @ self.centres.T).mul_(2.0).sub_(self.squared_norms)
        prediction[uncertain] = scores.argmax(dim=1)
        return prediction
