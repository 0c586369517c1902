"""NC1 by depth beside the neural feature ansatz by depth; Deep RFM (issue 25, item 4).

scikit-learn's digits (1,347 training images, K = 10): an MLP 64 -> 6 x 128 -> 10 (ReLU, no
batch norm), cross-entropy, SGD momentum 0.9, weight decay 1e-3, lr 0.05 cosine, batch 128,
400 epochs. At the start and the end, for every linear layer l: NC1 of its input features
(training images; layer 1's input is the pixels), and the correlation of W_l^T W_l with the
AGOP of the network at that input (alpha = 1) and with AGOP^{1/2}. Then Deep RFM on the
pixels (Gaussian kernel, ridge 1e-3, ReLU after M^{1/2}; 6 layers): NC1 at each layer.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/agop_depth.py

About 2 minutes on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from neuralcollapse.frontier.agop import deep_rfm, feature_ansatz, linear_layers
from neuralcollapse.metrics import measure
from neuralcollapse.train.data import load_dataset


def layer_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_pre_hook(
            lambda module, args, name=name: captured.__setitem__(name, args[0].detach())
        )
        for name, module in linear_layers(model)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, title: str) -> None:
    model.eval()
    inputs = layer_inputs(model, x)
    ansatz = feature_ansatz(model, torch.split(x, 256))
    print(f"-- {title}")
    print("layer | NC1 of its input | corr(W^T W, AGOP) | corr(W^T W, AGOP^1/2)")
    for index, layer in enumerate(ansatz):
        nc1 = measure(inputs[layer.name].double(), y, num_classes=10).nc1
        print(
            f"{index + 1:5d} | {nc1:10.4f} | {layer.correlation:.4f} | {layer.correlation_sqrt:.4f}"
        )


def main(epochs: int = 400, seed: int = 0) -> None:
    torch.manual_seed(seed)
    data = load_dataset("digits")
    x, y = data.train_images.flatten(1), data.train_labels
    layers: list[nn.Module] = [nn.Linear(64, 128), nn.ReLU()]
    for _ in range(5):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(128, 10))
    report(model, x, y, "at initialisation")
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        train = float((model(x).argmax(1) == y).float().mean())
        test = float(
            (model(data.test_images.flatten(1)).argmax(1) == data.test_labels).float().mean()
        )
    report(model, x, y, f"after {epochs} epochs (train acc {train:.4f}, test acc {test:.4f})")
    print("-- Deep RFM on the pixels (Gaussian kernel, median bandwidth, ridge 1e-3, ReLU)")
    print("layer | NC1 of its input | kernel predictor train acc")
    for index, layer in enumerate(deep_rfm(x.double(), y, depth=6)):
        print(f"{index + 1:5d} | {layer.nc1:10.4f} | {layer.train_accuracy:.4f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
