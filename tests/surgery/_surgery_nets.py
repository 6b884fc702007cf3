"""Small plain-torch networks for the surgery tests (no torchvision here)."""
import torch
import torch.nn as nn


class Block(nn.Module):
    """A residual conv-BN block written the way torchvision writes them (separate conv/bn attributes)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


class TinyNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = Block(width)
        self.down = nn.Conv2d(width, 2 * width, 1, 2, bias=False)
        self.layer2 = Block(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.layer2(self.down(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def vgg_style(width: int = 8, classes: int = 5) -> nn.Sequential:
    """A plain VGG-style stack: 3x3 convolutions with bias, ReLU, max-pools (what RepVGG's paper starts from)."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, 1, 1), nn.ReLU(), nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))


def train_steps(model: nn.Module, x: torch.Tensor, steps: int = 2, lr: float = 0.05) -> None:
    """A few SGD steps (train mode), so that BatchNorm statistics and every branch move away from their init."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def snapshot(model: nn.Module) -> tuple:
    """Everything a failed surgery must leave untouched: the module tree, the state (names, values) and modes."""
    return (repr(model), [(k, v.clone()) for k, v in model.state_dict().items()],
            [m.training for m in model.modules()])


def same_snapshot(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[2] == b[2] and len(a[1]) == len(b[1]) and all(
        ka == kb and torch.equal(va, vb) for (ka, va), (kb, vb) in zip(a[1], b[1]))
