"""The project's own MNIST classifier: a small CNN whose probabilities and penultimate features
feed the class metrics and the Fréchet / KID / precision-recall metrics.

Why our own network rather than Inception: Inception features of 28x28 grey digits upsampled to
299x299 colour are a poor description of MNIST, and Inception weights need torchvision and a
download. A small CNN trained on MNIST (>= 99% test accuracy) is the usual stand-in in the
MNIST-diffusion literature; its weights are committed in the package
(``diffusiontools/assets/mnist_classifier.pt``) and checked by sha256 on every load, so every
metric in this project is computed with exactly the same network.
"""

from importlib import resources

import torch
from torch import nn

from ..data.download import file_sha256
from ..data.idx_family import member_spec
from ..errors import UserError

SHIPPED = "mnist"  # the data set (data.dataset) whose classifier ships in the package
SHIPPED_SPEC = member_spec(SHIPPED)  # the shape and classes its weights were trained on
WEIGHTS_FILE = "mnist_classifier.pt"
# sha256 of the committed weights; a different file means the metrics are not comparable.
WEIGHTS_SHA256 = "333f4b4e5a9cbbd1b1610df5d62fe330da2f29379d4f37331f57f3f2ed7ef8d5"
FEATURE_DIM = 128


class MnistClassifier(nn.Module):
    """conv32-pool-conv64-pool-conv128-pool-fc128-fc10, about 0.24M parameters (< 1 MB).

    Pooling after every convolution keeps a CPU epoch over 60k images to about a minute; the
    128-d output of the first fully connected layer (after ReLU) is the feature embedding.
    It takes its data set's spec: channels, height, width and number of classes (the shipped
    weights: ``SHIPPED_SPEC``, MNIST's).
    """

    def __init__(self, channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 128, 3, 3)
            nn.Flatten(),  # (B, 1152)
            nn.Dropout(0.25),
            nn.Linear(128 * (height // 8) * (width // 8), FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: x (N, C, H, W) float in [-0.5, 0.5] -> (N, 128)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: x (N, C, H, W) float in [-0.5, 0.5] -> (N, num_classes)."""
        return self.head(self.body(x))


def load_classifier(device: torch.device | str) -> MnistClassifier:
    """The committed classifier, in eval mode on ``device``.

    Raises UserError when the weights file's sha256 differs from ``WEIGHTS_SHA256``, because
    metrics computed with other weights would silently not match the published ones.
    """
    weights = resources.files("diffusiontools") / "assets" / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(
            f"The classifier weights {WEIGHTS_FILE} are missing from diffusiontools/assets; "
            "regenerate with `diffusiontools classifier train`."
        )
    digest = file_sha256(weights)
    if digest != WEIGHTS_SHA256:
        raise UserError(
            f"The classifier weights have sha256 {digest}, not the expected {WEIGHTS_SHA256}; "
            "regenerate with `diffusiontools classifier train`."
        )
    with resources.as_file(weights) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # The layers' random init, overwritten below, must not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        model = MnistClassifier(*SHIPPED_SPEC.shape, SHIPPED_SPEC.num_classes)
    model.load_state_dict(state)
    return model.to(device).eval()
