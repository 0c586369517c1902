"""Shared test set-up: deterministic, single-threaded-friendly torch.

``NC_TEST_DETERMINISTIC=1`` runs the suite with ``torch.use_deterministic_algorithms(True)``
(issue 21: the suite must pass with it on and off, with 1 thread and with 2).
"""

import os

import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
if os.environ.get("NC_TEST_DETERMINISTIC") == "1":
    torch.use_deterministic_algorithms(True)
