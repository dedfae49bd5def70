"""Train the project's classifier (``classifier.MnistClassifier``) on a data set and save its
weights: MNIST's is shipped in the package, another data set's is kept by ``classifier_store``.

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
MIN_STEPS = 1400  # the default training length: MNIST's 3 epochs of 469 steps
LEARNING_RATE = 2e-3
MAX_SHIFT = 2  # pixels; MNIST digits are centred by mass, so small shifts are realistic


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling with 0.

    images: uint8 (B, H, W) or (B, C, H, W), 0 = background; every channel of an image moves
    together. Done as zero padding then a per-image crop (rows, then columns).
    """
    b, *lead, h, w = images.shape
    ones = (1,) * len(lead)
    padded = F.pad(images, (max_shift,) * 4)  # (B, ..., H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h)).view(b, *ones, h, 1)  # (B, ..., H, 1)
    cols = (dx[:, None] + torch.arange(w)).view(b, *ones, 1, w)  # (B, ..., 1, W)
    cropped = padded.gather(-2, rows.expand(b, *lead, h, w + 2 * max_shift))  # (B, ..., H, W+2s)
    return cropped.gather(-1, cols.expand(b, *lead, h, w))  # (B, ..., H, W)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str,
    batch_size: int = 1000,
) -> float:
    """Fraction of ``images`` (uint8 (N, C, H, W); MNIST's also (N, 28, 28)) whose argmax class
    equals ``labels`` (N,)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = to_model(images[start : start + batch_size]).to(device)
        predicted = model(x).argmax(dim=1).cpu()
        correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / len(images)


def resolved_epochs(epochs: int | None, n_train: int) -> int:
    """``epochs``, or for None the passes over ``n_train`` images that make at least
    ``MIN_STEPS`` steps of ``BATCH_SIZE``, and at least 3 (MNIST's 60,000 images: 3; scikit-learn's
    1,437 8x8 training digits: 117, where 3 passes are 36 steps and leave the classifier near
    chance)."""
    if epochs is not None:
        return epochs
    return max(3, math.ceil(MIN_STEPS / math.ceil(n_train / BATCH_SIZE)))


def fit_classifier(
    data: ImageDataset, epochs: int, seed: int, device: torch.device | str
) -> tuple[MnistClassifier, float]:
    """Train ``MnistClassifier`` of ``data.spec``'s shape and classes on all of ``data``'s
    training images (uint8 (N, C, H, W)); return it (eval mode, on ``device``) and its test
    accuracy.

    Adam with a cosine-decayed learning rate (so that 3 epochs suffice for >= 99% on MNIST),
    batch 128, random shifts of up to 2 px. Shuffling, shifts, initialisation and dropout all
    follow ``seed``; the caller's global RNG is left as it was. Raises UserError for
    ``epochs`` < 1 or a data set without labels.
    """
    if epochs < 1:
        raise UserError(f"epochs={epochs} is not a number of passes: give at least 1")
    spec = data.spec
    if spec.num_classes == 0:
        raise UserError(
            f"the data set {data.provenance.source} has no labels; a classifier needs classes"
        )
    # initialisation and dropout draw from the global RNG: seeded here, restored afterwards
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)  # shuffling and shifts
        model = MnistClassifier(spec.channels, spec.height, spec.width, spec.num_classes)
        model = model.to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        train_images = data.train_images  # (N, C, H, W)
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

        return model.eval(), accuracy(model, data.test_images, data.test_labels, device)


def train_classifier(
    data: ImageDataset,
    epochs: int | None,
    seed: int,
    device: torch.device | str,
    out_path: str | Path,
) -> float:
    """:func:`fit_classifier` for ``epochs`` (None: :func:`resolved_epochs`), its state dict
    saved to ``out_path`` (parent folders created); return its test accuracy. A path that is a
    folder, or whose folder cannot be created, is refused before training."""
    check_output_file(out_path, "out_path", "the weights", ending=".pt")  # not after the training
    epochs = resolved_epochs(epochs, len(data.train_images))
    model, test_accuracy = fit_classifier(data, epochs, seed, device)
    with staged_outputs() as staging:  # the weights (and a new folder) appear whole
        torch.save(state_dict(model), staging.file(out_path))
    return test_accuracy


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights on the CPU, as saved."""
    return {k: v.cpu() for k, v in model.state_dict().items()}
