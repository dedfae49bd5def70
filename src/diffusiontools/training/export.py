"""A trained model written out for use elsewhere, and read back by ``diffusiontools.load``.

Two formats, each a folder:

- ``safetensors``: ``model.safetensors`` (the network's weights as the model holds them: the
  EMA average where it was loaded with it) and ``diffusiontools.json`` (the resolved config, the
  schedule, which weights, the checkpoint they came from, the training data's provenance).
  Any run exports this way; safetensors files hold tensors only, so reading one runs no code.
- ``diffusers``: ``unet/`` (``UNet2DModel.from_pretrained``), ``scheduler/`` (a
  ``DDIMScheduler`` config with our betas) and the same ``diffusiontools.json``. Only Gaussian
  runs of ``model.network = unet2d_diffusers`` (diffusers' own network, trained directly).

The scheduler carries our schedule as it is: ``trained_betas`` = our T + 1 betas, hence
``num_train_timesteps = T + 1``; ``prediction_type`` epsilon / sample / v_prediction for eps /
x0 / v; ``clip_sample`` with range 0.5 for ``sampling.clip_x0`` (our pixels lie in [-0.5, 0.5]);
``set_alpha_to_one`` so that a step past t = 0 lands on the clean image, as our DDIM's last step
does; ``timestep_spacing = trailing``, which starts at t = T as ours does. Our DDIM's own time
grid, round(linspace(T, 0, K + 1)), is none of diffusers' spacings (docs/design.md). Our x0
clipping re-derives eps from the clipped x0_hat: in diffusers that is
``scheduler.step(..., use_clipped_model_output=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..config import Config, config_from_dict
from ..errors import UserError
from ..optional import require
from ..outputs.safe_writes import STAND_IN, check_output_folder, staged_outputs
from .checkpoint import follow_umask
from .run_config import as_recorded, check_config
from .run_folder import EXPORT_DESCRIPTION, RECONSTRUCTION_DIR, SAMPLES_DIR, RunFolder

if TYPE_CHECKING:  # an annotation only: trained_model imports this module
    from .trained_model import TrainedModel

FORMATS = ("safetensors", "diffusers")
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
UNET, SCHEDULER = "unet", "scheduler"
DIFFUSERS_WEIGHTS = f"{UNET}/diffusion_pytorch_model.safetensors"
ENTRIES = {EXPORT_DESCRIPTION, WEIGHTS, UNET, SCHEDULER}  # all an export writes
# What diffusiontools writes into an export folder besides (``sample EXPORT``, ``reconstruct
# EXPORT``): replaced with the export, as it came from the weights replaced.
OWN_FOLDERS = {SAMPLES_DIR, RECONSTRUCTION_DIR}
BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # ours -> diffusers' names
WEIGHT_KINDS = ("raw", "ema")  # indexed by TrainedModel.ema
PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}  # ours -> diffusers'


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise UserError(f"format={format!r} is not an export format: choose {' or '.join(FORMATS)}")


def schedule(process) -> dict:
    """The process's schedule as plain lists: betas and alpha_bar (Gaussian) or degradation
    levels (cold), T + 1 entries each, index t = 0..T."""
    if process.kind == "gaussian":
        return {
            "kind": "gaussian",
            "T": process.T,
            "beta": process.beta.tolist(),
            "alpha_bar": process.alpha_bar.tolist(),
            "prediction": process.prediction,
        }
    return {"kind": "cold", "T": process.T, "levels": process.levels.tolist()}


def write_export(model: TrainedModel, out: Path, format: str) -> Path:
    """Write ``model`` into the folder ``out`` in ``format`` (see the module doc); returns ``out``.

    ``out`` must be new, empty or an earlier export, which is replaced as a whole, with what
    diffusiontools wrote into it (``OWN_FOLDERS``); the folder is written beside it and renamed
    into place (``outputs.safe_writes.staged_outputs``), so a failure leaves no half-written
    export and the earlier one as it was. Raises DiffusionToolsError for an unknown format, a
    run the format cannot hold, or a folder that holds other files.
    """
    check_format(format)
    if format == "diffusers":
        _check_diffusers_exportable(model.config)
    out = check_output_folder(out, "out", "the export")
    _check_replaceable(out)
    with staged_outputs() as staging:
        folder = staging.folder(out, whole=True)
        if format == "safetensors":
            state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
            save_file(state, folder / WEIGHTS, metadata={"format": "pt"})
        else:
            _write_diffusers(model, folder)
        description = _describe(model, format)
        RunFolder(folder).description.write_text(json.dumps(description, indent=2) + "\n")
        follow_umask(folder)  # safetensors writes its file 0600
    return out


def _check_replaceable(out: Path) -> None:
    if out.is_file():
        raise UserError(f"out={out} is a file: give a folder for the export")
    if out.is_dir():  # the stand-ins a killed command of ours left are ours too
        entries = {p.name for p in out.iterdir() if not STAND_IN.match(p.name)}
        ours = ENTRIES | OWN_FOLDERS
        if entries and not (EXPORT_DESCRIPTION in entries and entries <= ours):
            foreign = ", ".join(sorted((entries - ours) or entries)[:3])
            raise UserError(
                f"out={out} holds files that are not an export ({foreign}), which replacing it "
                "would delete: give a new or empty folder"
            )


def _check_diffusers_exportable(config: Config) -> None:
    if config.diffusion.kind != "gaussian":
        raise UserError(
            "format='diffusers' exports Gaussian runs only: diffusers has no scheduler for cold "
            "diffusion (diffusion.kind = cold), so use format='safetensors'"
        )
    if config.model.network != "unet2d_diffusers":
        raise UserError(
            f"format='diffusers' needs a run of model.network = unet2d_diffusers (diffusers' "
            f"UNet2DModel, trained directly), and this run's {config.model.network} has no "
            "diffusers counterpart, so use format='safetensors'"
        )


def scheduler_config(config: Config, process) -> dict:
    """The ``DDIMScheduler`` arguments that reproduce our schedule (see the module doc).

    ``trained_betas`` is what diffusers uses; ``beta_start``, ``beta_end`` and ``beta_schedule``
    (which it then ignores) name the schedule for a reader of the config.
    """
    beta = process.beta.tolist()
    return {
        "num_train_timesteps": process.T + 1,
        "trained_betas": beta,
        "beta_start": beta[0],
        "beta_end": beta[-1],
        "beta_schedule": BETA_SCHEDULES[config.diffusion.schedule],
        "prediction_type": PREDICTION_TYPES[process.prediction],
        "clip_sample": config.sampling.clip_x0,
        "clip_sample_range": 0.5,
        "set_alpha_to_one": True,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
    }


def _write_diffusers(model: TrainedModel, folder: Path) -> None:
    diffusers = require("diffusers", "diffusers", "format='diffusers'")
    model.net.unet.save_pretrained(folder / UNET)
    scheduler = diffusers.DDIMScheduler(**scheduler_config(model.config, model.process))
    scheduler.save_pretrained(folder / SCHEDULER)


def _describe(model: TrainedModel, format: str) -> dict:
    """The export's ``diffusiontools.json``: everything needed to use the weights."""
    m = model.config.model
    return {
        "format": f"diffusiontools-{format}",
        "format_version": FORMAT_VERSION,
        "diffusiontools_version": __version__,
        **model.record(),
        "pixel_range": [-0.5, 0.5],  # model units: pixel / 255 - 0.5
        "network_time": (
            "integer timestep t = 0..T"
            if format == "diffusers"
            else "t / T in [0, 1], for t = 0..T"
        ),
        "null_label": m.num_classes if m.num_classes else None,  # classifier-free guidance
        "schedule": schedule(model.process),
        "config": model.config.to_dict(),
        "data": model.data,
    }


def read_export(folder: Path, map_location: torch.device) -> tuple[dict, Config, dict]:
    """(the description, its config (checked), the network's weights) of an export folder.

    Raises DiffusionToolsError for a damaged or newer export.
    """
    folder = Path(folder)
    description_path = RunFolder(folder).description
    try:
        description = json.loads(description_path.read_text())
        kind = description["format"].removeprefix("diffusiontools-")
        version = description["format_version"]
        config_dict = description["config"]
        if not isinstance(description["epoch"], int) or description["weights"] not in WEIGHT_KINDS:
            raise ValueError("its epoch or weights entry is garbled")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # its text: no help
        raise UserError(
            f"{description_path} is not an export description: expected the JSON file that "
            "diffusiontools export writes (format, format_version, epoch, weights, config)"
        ) from None
    if kind not in FORMATS:
        raise UserError(f"{folder} holds an export of unknown format {description['format']!r}")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{folder} is an export of format version {version!r}, newer than this diffusiontools "
            f"reads ({FORMAT_VERSION}); upgrade diffusiontools"
        )
    source = str(description_path)
    config = check_config(as_recorded(config_from_dict(config_dict, source), source=source))
    path = folder / (WEIGHTS if kind == "safetensors" else DIFFUSERS_WEIGHTS)
    try:
        weights = load_file(path, device=str(map_location))
    except (OSError, SafetensorError):  # its text (header internals) would not help
        raise UserError(
            f"{path} cannot be read as safetensors: expected the weights file that "
            "diffusiontools export writes (it is truncated or another kind of file)"
        ) from None
    if kind == "diffusers":  # UNet2DModel's own keys; our wrapper holds it as .unet
        weights = {f"{UNET}.{name}": tensor for name, tensor in weights.items()}
    return description, config, weights


def check_schedule(description: dict, process, folder: Path) -> None:
    """Refuse an export whose stored schedule is not the one its config gives here: it would
    sample differently from the run it came from."""
    stored, ours = description.get("schedule"), schedule(process)
    for key in ("beta", "alpha_bar") if process.kind == "gaussian" else ("levels",):
        if not isinstance(stored, dict) or stored.get(key) != ours[key]:  # JSON floats round-trip
            raise UserError(
                f"{folder}'s schedule ({key}) differs from the one diffusiontools "
                f"{__version__} computes from its config, so it would not sample as its run did"
            )
