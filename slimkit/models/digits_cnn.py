"""The demo model: a small conv net with BatchNorm, sized for 8×8 digits."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class DigitsCNN(nn.Module):
    """(N, 1, 8, 8) → (N, 10). width scales every layer (0.5 = the half-width student)."""

    def __init__(self, width: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, int(c * width)) for c in (32, 64, 128))
        self.features = nn.Sequential(
            _block(1, c1),        # (N, c1, 8, 8)
            _block(c1, c2),       # (N, c2, 8, 8)
            nn.MaxPool2d(2),      # (N, c2, 4, 4)
            _block(c2, c3),       # (N, c3, 4, 4)
            nn.MaxPool2d(2),      # (N, c3, 2, 2)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.1),
                                        nn.Linear(c3 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
