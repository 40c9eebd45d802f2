"""The paper's supervised networks, stacked over members (see :mod:`syre_rl.supervised.ensemble`).

Fully connected layers take ``[E, batch, features]``; convolutional trunks take images ``[E, batch, C, H, W]``
and run them as ``[batch, E * C, H, W]`` grouped convolutions. Every ``forward`` accepts ``hidden``, a list that
collects each hidden layer's activations ``[E, batch, units]`` for the rank and dead-unit measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syre_rl.plasticity.activations import HiddenLayer
from syre_rl.supervised.ensemble import StackedConv2d, StackedDropout, StackedLinear

__all__ = ["CNN", "MLP", "BetaVAE", "ResNet18", "from_grouped", "stacked_hidden_layers", "to_grouped"]


def to_grouped(x: Tensor) -> Tensor:
    """``[E, batch, C, H, W] -> [batch, E * C, H, W]``: the layout of grouped (stacked) convolutions."""
    e, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, e * c, h, w)


def from_grouped(x: Tensor, members: int) -> Tensor:
    """``[batch, E * C, H, W] -> [E, batch, C * H * W]``: back to the stacked fully connected layout."""
    return x.reshape(x.shape[0], members, -1).transpose(0, 1)


def _record(hidden: list[Tensor] | None, x: Tensor) -> Tensor:
    if hidden is not None:
        hidden.append(x)
    return x


class MLP(nn.Module):
    """ReLU MLP, stacked: ``[E, batch, in] -> [E, batch, out]``.

    :param dropout: per-member dropout rate after every hidden layer (``None``: no dropout layer).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        generators: Sequence[torch.Generator],
        dropout: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        widths = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(
            StackedLinear(a, b, generators) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        # One ReLU module per hidden layer: CBP and ReDo read the units' activations through its forward hook.
        self.activations = nn.ModuleList(nn.ReLU() for _ in hidden)
        self.dropout = (
            StackedDropout(dropout) if dropout is not None and any(p > 0 for p in dropout) else None
        )

    def forward(self, x: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        for layer, activation in zip(self.layers[:-1], self.activations, strict=True):
            x = _record(hidden, activation(layer(x)))
            if self.dropout is not None:
                x = self.dropout(x)
        return self.layers[-1](x)

    def hidden_layers(self, prefix: str = "") -> list[HiddenLayer]:
        """Each hidden layer's units: computed by ``layers[i]``, output by ``activations[i]``, read by
        ``layers[i + 1]``."""
        return [
            HiddenLayer(f"{prefix}{i}", self.layers[i], self.activations[i], (self.layers[i + 1],))
            for i in range(len(self.activations))
        ]

    def member(self, e: int) -> nn.Sequential:
        """Member ``e`` as a plain ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU`` (a copy, no dropout)."""
        modules: list[nn.Module] = []
        for layer in self.layers:
            modules += [layer.member(e), nn.ReLU()]
        return nn.Sequential(*modules[:-1])


class CNN(nn.Module):
    """A small MNIST CNN: two 5x5 conv + max-pool blocks (32, 64 channels), a 128-unit hidden layer."""

    def __init__(
        self, generators: Sequence[torch.Generator], in_channels: int = 1, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.members = len(generators)
        self.conv1 = StackedConv2d(in_channels, 32, 5, generators)
        self.conv2 = StackedConv2d(32, 64, 5, generators)
        self.fc1 = StackedLinear(64 * 4 * 4, 128, generators)
        self.fc1_activation = nn.ReLU()
        self.fc2 = StackedLinear(128, num_classes, generators)

    def forward(self, x: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(to_grouped(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = _record(hidden, from_grouped(x, self.members))
        return self.fc2(_record(hidden, self.fc1_activation(self.fc1(x))))

    def hidden_layers(self, prefix: str = "") -> list[HiddenLayer]:
        """The fully connected hidden layer (CBP and ReDo do not act on convolution channels)."""
        return [HiddenLayer(f"{prefix}fc1", self.fc1, self.fc1_activation, (self.fc2,))]


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        e = len(generators)
        self.conv1 = StackedConv2d(cin, cout, 3, generators, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(e * cout)
        self.conv2 = StackedConv2d(cout, cout, 3, generators, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(e * cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                StackedConv2d(cin, cout, 1, generators, stride=stride, bias=False), nn.BatchNorm2d(e * cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (3x3 stem, no max-pool; He et al. 2016), stacked. Batch norm over ``E * C`` channels keeps
    each member's statistics its own.

    :param width: channels of the first stage (64 in the paper; small values for CPU tests).
    :param num_classes: size of the linear head; 0 for a bare backbone (``forward`` returns features).
    """

    def __init__(
        self, generators: Sequence[torch.Generator], num_classes: int, width: int = 64, in_channels: int = 3
    ) -> None:
        super().__init__()
        e = self.members = len(generators)
        self.stem = StackedConv2d(in_channels, width, 3, generators, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(e * width)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(2):
                blocks.append(_BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1, generators))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = cin
        self.fc = StackedLinear(cin, num_classes, generators) if num_classes else None

    def forward(self, x: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        x = self.blocks(F.relu(self.bn(self.stem(to_grouped(x)))))
        features = _record(hidden, from_grouped(F.adaptive_avg_pool2d(x, 1), self.members))
        return self.fc(features) if self.fc is not None else features


class BetaVAE(nn.Module):
    """Fully connected beta-VAE (Higgins et al. 2017): Gaussian encoder, Bernoulli decoder over pixels.

    ``forward`` returns ``(reconstruction logits, mu, logvar)``; ``hidden`` collects the encoder's mean ``mu``.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        in_features: int = 784,
        hidden: int = 256,
        latent: int = 10,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = MLP(in_features, [hidden, hidden], 2 * latent, generators)
        self.decoder = MLP(latent, [hidden, hidden], in_features, generators)

    def forward(self, x: Tensor, hidden: list[Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encoder(x).split(self.latent, dim=-1)
        _record(hidden, mu)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z), mu, logvar


def stacked_hidden_layers(model: nn.Module) -> list[HiddenLayer]:
    """Every fully connected hidden layer of a stacked model (of each :class:`MLP` and :class:`CNN` in it), for
    CBP and ReDo; raises ``ValueError`` when there is none."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, (MLP, CNN)):
            layers += module.hidden_layers(f"{name}." if name else "")
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no stacked fully connected hidden layers for cbp or redo "
            "(they act on the MLP and CNN models' fully connected layers)"
        )
    return layers
