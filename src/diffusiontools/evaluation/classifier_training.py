"""Train the project's MNIST classifier (``classifier.MnistClassifier``) and save its weights.

The committed weights ``diffusiontools/assets/mnist_classifier.pt`` were made with

    DIFFUSIONTOOLS_DATA=/work/shared/data/mnist diffusiontools classifier train --epochs 3 \
        --seed 0 --device cpu --out src/diffusiontools/assets/mnist_classifier.pt

on CPU (torch 2.13, 2 shared cores; about 15 minutes on a loaded machine, 3 when idle): seed 0,
3 epochs over all 60,000 training images, test accuracy 0.9913 on the full 10,000-image MNIST
test set. CPU kernels are not bit-for-bit reproducible across machines, so a retrained file may
differ in its last digits and in its sha256. (The command
calls :func:`train_classifier`.) After retraining, update
``classifier.WEIGHTS_SHA256``.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from diffusiontools.data import ImageDataset, to_model
from diffusiontools.errors import UserError
from diffusiontools.evaluation.classifier import MnistClassifier
from diffusiontools.outputs.safe_writes import check_output_file, staged_outputs

BATCH_SIZE = 128
LEARNING_RATE = 2e-3
MAX_SHIFT = 2  # pixels; MNIST digits are centred by mass, so small shifts are realistic


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling with 0.

    images: uint8 (B, 28, 28), 0 = background. Done as zero padding then a per-image crop.
    """
    b, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], rows, cols]  # (B, H, W)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str,
    batch_size: int = 1000,
) -> float:
    """Fraction of ``images`` (uint8 (N, 28, 28)) whose argmax class equals ``labels`` (N,)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = to_model(images[start : start + batch_size]).to(device)
        predicted = model(x).argmax(dim=1).cpu()
        correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / len(images)


def train_classifier(
    data: ImageDataset,
    epochs: int,
    seed: int,
    device: torch.device | str,
    out_path: str | Path,
) -> float:
    """Train ``MnistClassifier`` on all of ``data``'s training images (uint8 (N, 1, 28, 28));
    return its test accuracy.

    Adam with a cosine-decayed learning rate (so that 3 epochs suffice for >= 99%), batch 128,
    random shifts of up to 2 px. Shuffling, shifts, initialisation and dropout all follow
    ``seed``. Saves the state dict to ``out_path`` (parent folders created); a path that is a
    folder, or whose folder cannot be created, is refused before training.
    """
    if epochs < 1:
        raise UserError(f"epochs={epochs} is not a number of passes: give at least 1")
    check_output_file(out_path, "out_path", "the weights", ending=".pt")  # not after the training
    # initialisation and dropout draw from the global RNG: seeded here, restored afterwards
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)  # shuffling and shifts
        model = MnistClassifier().to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        train_images = data.train_images[:, 0]  # (N, 28, 28): the one channel
        steps_per_epoch = math.ceil(len(train_images) / BATCH_SIZE)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * steps_per_epoch)

        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_images), generator=generator)
            progress = tqdm(range(steps_per_epoch), desc=f"classifier epoch {epoch + 1}/{epochs}")
            for step in progress:
                batch = order[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
                images = random_shift(train_images[batch], MAX_SHIFT, generator)
                loss = F.cross_entropy(
                    model(to_model(images).to(device)), data.train_labels[batch].to(device)
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                progress.set_postfix(loss=f"{loss.item():.4f}")

        test_accuracy = accuracy(model, data.test_images[:, 0], data.test_labels, device)
        with staged_outputs() as staging:  # the weights (and a new folder) appear whole
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, staging.file(out_path))
        return test_accuracy
