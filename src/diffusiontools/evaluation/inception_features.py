"""Inception features for a data set without class labels, which cannot have a classifier of its
own (``classifier_store``): the pool features (2048-d) of the InceptionV3 behind FID (Heusel et
al. 2017), as torch-fidelity ships it, feed the Fréchet distance, KID and precision/recall.

Used only where it can be had offline, never fetched: torch-fidelity must import (its package
imports torchvision, so ``pip install torch-fidelity`` brings torchvision with it; diffusiontools
does not depend on either) and its weights must be in the torch hub cache, where torch-fidelity
itself keeps them:

    $(python -c "import torch; print(torch.hub.get_dir())")/checkpoints/<WEIGHTS_FILE>

(``python -c "import torch_fidelity as f; f.FeatureExtractorInceptionV3('inception-v3-compat',
['2048'])"`` downloads them there once, from torch-fidelity's release). Where either is missing,
:func:`feature_network` says why, and the evaluation leaves the feature metrics out and says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data import to_uint8
from ..data.download import file_sha256

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's URL's file name
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub's convention: the name carries its sha256 prefix
FEATURE_DIM = 2048


class InceptionFeatures(nn.Module):
    """``features(x)``: pool features (N, 2048) of images x (N, C, H, W), C = 1 or 3, float in
    [-0.5, 0.5]; the images go in as uint8 pixels (gray repeated to RGB), which the network
    resizes to 299x299 itself. No class head: it knows nothing of the data set's classes."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pixels = to_uint8(x)  # uint8 as the samples are saved: (N, H, W) gray, (N, 3, H, W) RGB
        if pixels.dim() == 3:
            pixels = pixels[:, None].expand(-1, 3, -1, -1)  # (N, 3, H, W): gray as RGB
        (pool,) = self.extractor(pixels)
        return pool  # (N, 2048)


def weights_path() -> Path:
    """Where torch-fidelity keeps the Inception weights: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def feature_network(device: torch.device | str) -> tuple[InceptionFeatures | None, dict]:
    """The Inception feature network on ``device`` in eval mode, and its record (JSON:
    ``feature_network``, ``weights``, ``weights_sha256``); or None and a record whose
    ``feature_network`` is None and ``unavailable`` says why, in one sentence."""
    try:
        from torch_fidelity import __version__ as version
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as error:
        return None, unavailable(
            f"torch-fidelity's InceptionV3 cannot be imported ({error}); `pip install "
            "torch-fidelity` installs it with torchvision"
        )
    path = weights_path()
    if not path.is_file():
        return None, unavailable(f"its weights are not in the torch hub cache ({path})")
    digest = file_sha256(path)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        return None, unavailable(f"the file {path} is not torch-fidelity's (sha256 {digest[:12]})")
    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    record = {
        "feature_network": f"InceptionV3 pool features, {FEATURE_DIM}-d (torch-fidelity {version})",
        "weights": str(path),
        "weights_sha256": digest,
    }
    return InceptionFeatures(extractor).to(device).eval(), record


def unavailable(reason: str) -> dict:
    """The record of a feature network that cannot be had: ``reason`` says why."""
    return {
        "feature_network": None,
        "weights": None,
        "weights_sha256": None,
        "unavailable": f"Inception features are not available offline: {reason}",
    }


def unlabelled_scoring(dataset: str, device: torch.device | str) -> tuple[nn.Module | None, dict]:
    """What scores the samples of ``dataset``, a data set without class labels: the Inception
    feature network (or None) and its record, whose ``omitted`` says which metrics are left out
    and why; pixel-space memorisation, the t-SNE KLs and total variance need no network."""
    network, record = feature_network(device)
    omitted = (
        f"data.dataset = {dataset} has no class labels: class metrics (class entropy, mean "
        "confidence, recognisable fraction, read as the class asked for, class histograms) "
        "omitted"
    )
    if network is None:
        omitted += (
            f"; {record['unavailable']}: feature metrics (Fréchet distance, KID, precision, "
            "recall) omitted; pixel-space memorisation, t-SNE KL and total variance computed"
        )
    return network, {"dataset": dataset, **record, "omitted": omitted}
