"""A small neural network on the window, calendar and season features: the neural learner.

A two-layer perceptron with a linear skip connection maps the standardised features to the
scale-free change over every step ahead at once (direct multi-horizon), trained with the
absolute-error loss on the CPU in a fraction of a second. Torch is needed only to train: the
learned weights are kept as numpy arrays, so forecasting is a few matrix products (well under
a millisecond, no torch) and the same input always gives the same output. Training holds out
its latest origins to choose the epoch (early stopping), which is what keeps a week of
history from being memorised.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from forecastscaler.models.base import Capabilities, FloatArray
from forecastscaler.models.features import WindowForecaster

# The share of training origins held out to choose the epoch, and how many epochs without
# improvement end training.
VALIDATION = 0.2
PATIENCE = 30


class NeuralNet(WindowForecaster):
    """Direct multi-horizon perceptron of the scale-free change over the next steps."""

    name: ClassVar[str] = "neuralNet"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(
        self,
        horizon: int = 5,
        window: int = 16,
        context: int = 64,
        season: int | None = None,
        hidden: int = 32,
        epochs: int = 300,
        learning_rate: float = 0.005,
        weight_decay: float = 1e-2,
        max_train: int = 3000,
        max_origins: int = 1500,
        seed: int = 0,
    ) -> None:
        super().__init__(
            horizon=horizon,
            window=window,
            context=context,
            season=season,
            max_train=max_train,
            max_origins=max_origins,
        )
        if hidden < 1 or epochs < 1:
            raise ValueError("hidden and epochs must be positive")
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed

    def _learn(self, features: FloatArray, changes: FloatArray) -> None:
        import torch

        x_mean = features.mean(axis=0)
        x_std = np.maximum(features.std(axis=0), 1e-6)
        seen = np.isfinite(changes)
        # Targets in units of their typical size, so one learning rate suits every series.
        y_unit = float(np.mean(np.abs(changes[seen]))) if seen.any() else 1.0
        y_unit = max(y_unit, 1e-6)
        x_all = torch.from_numpy(((features - x_mean) / x_std).astype(np.float32))
        y_all = torch.from_numpy(np.where(seen, changes / y_unit, 0.0).astype(np.float32))
        mask_all = torch.from_numpy(seen.astype(np.float32))
        # The latest training origins (in time) judge when to stop: the epoch whose weights
        # forecast them best is kept, which is what keeps a small history from being memorised.
        cut = len(features) - max(1, int(VALIDATION * len(features)))
        x, y, mask = x_all[:cut], y_all[:cut], mask_all[:cut]
        xv, yv, maskv = x_all[cut:], y_all[cut:], mask_all[cut:]
        count = max(1.0, float(mask.sum()))
        count_v = max(1.0, float(maskv.sum()))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: threads cost more than they save
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = torch.nn.Sequential(
                    torch.nn.Linear(x.shape[1], self.hidden),
                    torch.nn.ReLU(),
                    torch.nn.Linear(self.hidden, self.hidden),
                    torch.nn.ReLU(),
                    torch.nn.Linear(self.hidden, self.horizon),
                )
                skip = torch.nn.Linear(x.shape[1], self.horizon, bias=False)
                torch.nn.init.zeros_(skip.weight)
                params = [*net.parameters(), *skip.parameters()]
                optimizer = torch.optim.AdamW(
                    params, lr=self.learning_rate, weight_decay=self.weight_decay
                )
                best, best_state, since = np.inf, [p.detach().clone() for p in params], 0
                for _ in range(self.epochs):
                    optimizer.zero_grad()
                    loss = ((net(x) + skip(x) - y).abs() * mask).sum() / count
                    loss.backward()
                    optimizer.step()
                    with torch.no_grad():
                        score = float(((net(xv) + skip(xv) - yv).abs() * maskv).sum() / count_v)
                    if score < best - 1e-6:
                        best, best_state, since = score, [p.detach().clone() for p in params], 0
                    else:
                        since += 1
                        if since >= PATIENCE:
                            break
                with torch.no_grad():
                    for param, kept in zip(params, best_state, strict=True):
                        param.copy_(kept)
        finally:
            torch.set_num_threads(threads)
        layers = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.learned_: dict[str, FloatArray] = {
            "x_mean": x_mean,
            "x_std": x_std,
            "y_unit": np.array([y_unit]),
            "x_low": x_all.numpy().min(axis=0).astype(np.float64),
            "x_high": x_all.numpy().max(axis=0).astype(np.float64),
            "skip": skip.weight.detach().numpy().astype(np.float64).T,
        }
        for i, layer in enumerate(layers):
            self.learned_[f"w{i}"] = layer.weight.detach().numpy().astype(np.float64).T
            self.learned_[f"b{i}"] = layer.bias.detach().numpy().astype(np.float64)

    def _infer(self, features: FloatArray) -> FloatArray:
        p = self.learned_
        # Within the range seen in training: a network extrapolates its slopes, and inputs
        # beyond anything it learned from (a new regime, a spike) must not run away with it.
        x = np.clip((features - p["x_mean"]) / p["x_std"], p["x_low"], p["x_high"])
        h = np.maximum(x @ p["w0"] + p["b0"], 0.0)
        h = np.maximum(h @ p["w1"] + p["b1"], 0.0)
        out = h @ p["w2"] + p["b2"] + x @ p["skip"]
        return np.asarray(out * p["y_unit"][0], dtype=np.float64)
