"""A trained model loaded back from a run folder: its config, network and forward process, and
the sampling calls a notebook makes on it."""

from __future__ import annotations

import dataclasses
import numbers
import operator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import SWITCHED, Config
from ..data import ImageDataset, data_record, load_data, recorded_shape
from ..data.dataset import are_digits
from ..device import resolve_device
from ..diffusion import make_process
from ..errors import UserError
from ..models import make_network
from ..sampling.generation import generate, trajectory
from ..sampling.plan import SamplingPlan, resolve_plan
from . import checkpoint as ckpt_io
from .export import (
    UNET,
    WEIGHT_KINDS,
    WEIGHTS,
    check_format,
    check_schedule,
    read_export,
    write_export,
)
from .pretrained import model_folder
from .resume_rules import DATA_DIR_REMEDY, check_same_data
from .run_folder import RunFolder, recover_if_idle

SAMPLING_TYPES = {"sampler": str, "steps": int, "eta": float, "guidance": float}
SAMPLING_TYPES.update(clip_x0=bool, start=str, timestep_spacing=str)


def _as_type(name: str, value, kind: type):
    """``value`` as ``kind`` (int, float, str or bool), or a one-line refusal.

    An int may come from numpy or a 0-dim integer tensor (a label taken from an array); a float
    is any real number; a bool (Python, numpy or tensor) is no number here.
    """
    boolean = isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")
    if kind in (int, float) and not boolean:
        if kind is float and isinstance(value, numbers.Real):
            return float(value)
        try:
            whole = operator.index(value)  # int, numpy integer, 0-dim integer tensor
        except TypeError:
            pass
        else:
            return whole if kind is int else float(whole)
    elif type(value) is kind:
        return value
    raise UserError(f"{name}={value!r} is not {'an' if kind is int else 'a'} {kind.__name__}")


@dataclass
class TrainedModel:
    """A network with the process it was trained on, as ``diffusiontools.load`` returns it.

    ``config``: the run's resolved config; ``net``: the network (EMA weights where the run kept
    them), in eval mode on ``device``; ``process``: the forward process (Gaussian or cold);
    ``epoch``: the epoch whose weights these are (0-based, as the report counts), finished or,
    for a checkpoint written inside it, not (``epoch_finished``; None: an export from before
    that was recorded); ``step``: optimiser steps taken; ``path``: the checkpoint file (or an
    export's weights file); ``data``: where its training data came from (source, md5); ``ema``:
    whether ``net`` holds the run's EMA average.
    """

    config: Config
    net: nn.Module
    process: object
    epoch: int
    path: Path
    data: dict | None = None  # provenance of the training data (None: a run from before it)
    ema: bool = False
    step: int | None = None  # optimiser steps taken (None: an export from before it was kept)
    epoch_finished: bool | None = True
    checkpoint: Path | None = None  # an export's: the checkpoint it came from (None: ``path``)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape (C, H, W): that of the data the run trained on, as recorded."""
        return recorded_shape(self.data)

    def dataset(self) -> dict:
        """The data set the run trained on, as its record says and every sample file names it:
        ``name`` (``data.dataset``; ``memory``: arrays handed to ``dt.train(..., data=)``),
        ``source`` (None: a run that recorded none), ``fingerprint``
        (``ImageDataset.fingerprint``; None: a run from before it was recorded), ``shape``
        [C, H, W] and ``class_names`` (empty where none are recorded)."""
        record = self.data or {}
        recorded = record.get("dataset", {})
        return {
            "name": self.config.data.dataset,
            "source": record.get("source"),
            "fingerprint": recorded.get("fingerprint"),
            "shape": list(self.shape),
            "class_names": list(recorded.get("spec", {}).get("class_names", [])),
        }

    def __repr__(self) -> str:
        data = self.dataset()
        where = "in-memory arrays" if data["name"] == "memory" else f"data.dataset = {data['name']}"
        fingerprint = "unrecorded" if data["fingerprint"] is None else data["fingerprint"][:16]
        return (
            f"TrainedModel({self.config.name!r}, {self.process.kind}, epoch {self.epoch}, "
            f"step {self.step}, images {'x'.join(map(str, self.shape))}, trained on {where} "
            f"(fingerprint {fingerprint}), from {self.path})"
        )

    def _repr_markdown_(self) -> str:
        return f"`{self!r}`"

    def record(self) -> dict:
        """Which weights these are, as every record of samples or metrics names them: the
        ``checkpoint`` file (absolute; an export's: the checkpoint it was written from), the
        ``epoch``, whether it had finished (``epoch_finished``), the optimiser ``step``,
        ``weights`` "ema" or "raw" and ``weights_sha256``, the weights themselves
        (``checkpoint.weights_sha256``): a run replaced by one that stopped at the same step is
        told apart by it."""
        return {
            "checkpoint": str((self.checkpoint or self.path).resolve()),
            "epoch": self.epoch,
            "epoch_finished": self.epoch_finished,
            "step": self.step,
            "weights": WEIGHT_KINDS[self.ema],
            "weights_sha256": ckpt_io.weights_sha256(self.net),
        }

    @property
    def folder(self) -> Path:
        """The run folder of the checkpoint, or the export folder the model was read from."""
        run = RunFolder.holding(self.path)
        return self.path.parent if run is None else run.path

    def export(self, out: str | Path, format: str = "safetensors") -> Path:
        """Write this model's weights (as held: EMA where ``ema``) for use elsewhere; returns the
        folder ``out``.

        ``format``: ``safetensors`` (``model.safetensors`` + ``diffusiontools.json``, the resolved
        config and the schedule; any run; ``diffusiontools.load(out)`` reads it back) or
        ``diffusers`` (``unet/`` and ``scheduler/`` for diffusers' ``from_pretrained``, pixels
        in [-0.5, 0.5]; Gaussian runs of ``model.network = unet2d_diffusers`` only, and the
        ``diffusers`` extra). ``out`` must be new, empty or an earlier export, which is replaced.
        Raises DiffusionToolsError naming a format or a run that cannot be exported so.
        """
        return write_export(self, Path(out), format)

    def sampling_plan(
        self,
        sampler: str | None = None,
        steps: int | None = None,
        digit: int | None = None,
        label: int | None = None,
        **options,
    ) -> SamplingPlan:
        """What a draw with these settings does (``sampling.plan.resolve_plan``): ``sampler``,
        ``steps``, ``label`` (or ``digit``, its alias: :func:`class_label`) and ``options``
        (guidance, eta, clip_x0, start, timestep_spacing; None: the run's own) on the run's
        config. An option given (not None) that cannot take
        effect is refused, whatever its value (``eta=0.0`` for the ancestral sampler too), not
        ignored. The run's ``steps``, ``eta`` and ``timestep_spacing`` belong to the run's
        sampler: picking another sampler without giving them uses that sampler's defaults. A
        cold model starts from its data set's images: data other than the run's is refused.
        """
        name, label = class_label(label, digit)
        classes = self.dataset()["class_names"]  # digit= names a digit: refused on other classes
        if name == "digit" and classes and not are_digits(classes):
            raise UserError(
                f"digit={label} names a digit; data.dataset = {self.config.data.dataset}'s "
                f"classes are {', '.join(classes)}: use label={label}"
            )
        given = {"sampler": sampler, "steps": steps, **options}
        for key, value in given.items():
            if value is not None:
                given[key] = _as_type(key, value, SAMPLING_TYPES[key])
        plan = resolve_plan(self.config, **given, digit=label, label_name=name)
        if self.process.kind == "cold":
            self.own_data("sample", "a cold model starts from its data set's images")
        return plan

    def own_data(self, action: str, why: str) -> ImageDataset:
        """The data this model trained on, read as its ``[data]`` settings say (``data.dir``:
        where :func:`load` was told they lie now), for ``action`` (sample, reconstruct), which
        needs them ``why``. Raises UserError where they cannot be read, or where what is read
        is not the data the run trained on (``check_same_data``: shape, md5s, files' sha256);
        either names data_dir= as the remedy."""
        try:
            dataset = load_data(self.config.data)
        except UserError as exc:  # the data moved since training: say how to find them
            raise UserError(
                f"{exc} ({why}: where the run's data lie elsewhere now, give data_dir=THEIR_PATH)"
            ) from None
        found = data_record(dataset)
        check_same_data(self.data, found, self.folder, action, ("source", "md5"), DATA_DIR_REMEDY)
        return dataset

    def sample(
        self,
        n: int = 16,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        digit: int | None = None,
        guidance: float | None = None,
        eta: float | None = None,
        clip_x0: bool | None = None,
        start: str | None = None,
        timestep_spacing: str | None = None,
        label: int | None = None,
        progress: bool = True,
    ) -> torch.Tensor:
        """Draw ``n`` samples: a float tensor (n, C, H, W) (:attr:`shape`) in model range
        [-0.5, 0.5] (values may overshoot slightly; ``diffusiontools.show`` and the NPZ files
        clamp), on the model's device. Every option left None is the run's ``sampling.*`` setting:
        ``sampler`` (one of ``sampling.registry.SAMPLERS``: ancestral, ddim, dpm_solver, heun,
        euler_ancestral; naive, improved for cold models), ``steps`` (the sampler's steps, 1..T),
        ``label`` (the class to draw, 0..num_classes - 1, class-conditional models; ``digit`` is
        its alias, for digit data sets), ``guidance`` (classifier-free guidance scale, Ho
        & Salimans 2022), ``eta`` (DDIM stochasticity, Song et al. 2021), ``clip_x0`` (clamp each
        step's x0_hat), ``start`` (a cold model's x_T), ``timestep_spacing`` (the time grid of ddim
        / dpm_solver: ours, or diffusers' trailing, leading, linspace, to reproduce its scheduler's
        run exactly). Sample i depends only on ``seed`` and i. A tqdm bar shows the sampler's
        steps while it draws, erased when done (``progress=False`` hides it, as does tqdm's
        ``TQDM_DISABLE=1`` set before tqdm is imported). Raises DiffusionToolsError naming an
        option that does not apply to this model or sampler.
        """
        n = _as_type("n", n, int)
        seed = _as_type("seed", seed, int)
        plan = self.sampling_plan(
            sampler,
            steps,
            digit,
            label,
            guidance=guidance,
            eta=eta,
            clip_x0=clip_x0,
            start=start,
            timestep_spacing=timestep_spacing,
        )
        return generate(
            *(self.net, self.process, self.config, n, seed, self.device),
            plan=plan,
            shape=self.shape,
            progress=_as_type("progress", progress, bool),
        )

    def trajectory(
        self,
        n: int = 8,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        digit: int | None = None,
        label: int | None = None,
        progress: bool = True,
        **options,
    ) -> tuple[list[int], list[torch.Tensor]]:
        """The reverse process of ``n`` samples near t = T, T/2, T/10, T/20 and 0: the times
        reached and one (n, C, H, W) state per time (the last is the sample, the same as
        :meth:`sample` gives). ``options``: guidance, eta, clip_x0, start, timestep_spacing as
        for :meth:`sample`; ``label`` (or ``digit``) and ``progress`` too."""
        plan = self.sampling_plan(sampler, steps, digit, label, **options)
        return trajectory(
            *(self.net, self.process, self.config, n, seed, self.device),
            plan=plan,
            shape=self.shape,
            progress=_as_type("progress", progress, bool),
        )


def class_label(label, digit) -> tuple[str, int | None]:
    """The class to draw and the argument that gave it: ``label``, else ``digit``, its alias for
    digit data sets (MNIST); both given and different are refused. Returns ("label", value),
    ("digit", value) or ("label", None) when neither is given."""
    if label is not None and digit is not None:
        label, digit = _as_type("label", label, int), _as_type("digit", digit, int)
        if label != digit:
            raise UserError(
                f"label={label} and digit={digit} differ; digit is an alias of label: give one"
            )
    if label is None and digit is not None:
        return "digit", _as_type("digit", digit, int)
    return "label", None if label is None else _as_type("label", label, int)


def _check_epoch(epoch) -> None:
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise UserError(f"epoch={epoch!r} is not an epoch number: give an int, or None (latest)")


def load_trained(
    run_dir: Path, epoch: int | None, device: torch.device, use_ema: bool = True
) -> TrainedModel:
    """Load the checkpoint of ``epoch`` (None: latest); EMA weights when the run kept them."""
    if Path(run_dir).is_file():
        raise UserError(f"{run_dir} is a file: give the run folder that holds checkpoints/")
    recover_if_idle(Path(run_dir))  # an overwrite killed before its first checkpoint: old run
    path = RunFolder(run_dir).checkpoint(epoch)
    ckpt = ckpt_io.load_checkpoint(path, map_location=device)
    config = ckpt_io.stored_config(ckpt, path)
    shape = recorded_shape(ckpt.get("data"))
    net = make_network(config.model, seed=0, T=config.diffusion.T, shape=shape)  # weights below
    net = net.to(device)
    ckpt_io.load_weights(net, ckpt_io.stored_weights(ckpt, use_ema), path)
    net.eval()
    epoch = ckpt_io.finished_epochs(ckpt)
    process = make_process(config).to(device)
    ema = use_ema and ckpt.get("ema") is not None
    step, finished = ckpt.get("step"), ckpt["batch"] == 0
    return TrainedModel(config, net, process, epoch, path, ckpt.get("data"), ema, step, finished)


def load_export(folder: Path, device: torch.device, use_ema: bool = True) -> TrainedModel:
    """The model of an export folder written by :meth:`TrainedModel.export`."""
    description, config, weights = read_export(folder, device)
    if not use_ema and description["weights"] == "ema":
        raise UserError(f"ema=False asks for raw weights, but {folder} holds the EMA weights only")
    shape = recorded_shape(description.get("data"))
    net = make_network(config.model, seed=0, T=config.diffusion.T, shape=shape).to(device)
    ckpt_io.load_weights(net, weights, folder)
    net.eval()
    process = make_process(config).to(device)
    check_schedule(description, process, folder)
    path = folder / (WEIGHTS if description["format"].endswith("safetensors") else UNET)
    recorded = description.get("weights_sha256")  # None: written before exports recorded it
    if recorded is not None and ckpt_io.weights_sha256(net) != recorded:
        raise UserError(
            f"the weights in {path} are not those its diffusiontools.json records "
            "(weights_sha256): the file was changed or damaged since it was exported; export "
            "the run again"
        )
    ema = description["weights"] == "ema"
    data, step = description.get("data"), description.get("step")
    finished = description.get("epoch_finished")  # None: written before it was recorded
    source = Path(description["checkpoint"]) if "checkpoint" in description else None
    return TrainedModel(
        config, net, process, description["epoch"], path, data, ema, step, finished, source
    )


def load(
    run_dir: str | Path,
    epoch: int | None = None,
    device: str = "auto",
    ema: bool = True,
    data_dir: str | Path | None = None,
) -> TrainedModel:
    """The model of a run folder written by ``diffusiontools.train`` (or the CLI), of an
    export folder written by :meth:`TrainedModel.export`, or a model shipped with the package
    by name (``"model1"``; :func:`pretrained.pretrained_names`), offline, its weights checked
    against their pinned sha256.

    ``epoch``: a kept checkpoint's epoch (None: the latest, which may be inside an epoch; an
    export holds one set of weights and takes None only); ``device``: auto (CUDA when present),
    cpu, cuda or cuda:N; ``ema``: the EMA weights where the run kept them (False: the raw ones,
    which an export of EMA weights does not hold); ``data_dir``: where the run's data lie now,
    as ``data.dir`` names them (a folder; an NPZ file), when they moved since training (a cold
    model samples from them; they must be the data the run trained on). Raises
    DiffusionToolsError naming a missing run, epoch or device, or an export that does not match.
    """
    if not isinstance(run_dir, str | Path) or str(run_dir) == "":  # Path("") is the cwd
        raise UserError(
            f"run_dir={run_dir!r} is not a folder: give a run or export folder's path, or a "
            "shipped model's name"
        )
    _check_epoch(epoch)
    return load_model(Path(run_dir), epoch, resolve_device(device), use_ema=ema, data_dir=data_dir)


def load_model(
    folder: Path,
    epoch: int | None,
    device: torch.device,
    use_ema: bool = True,
    data_dir: str | Path | None = None,
) -> TrainedModel:
    """:func:`load` on a device already chosen: a run folder's checkpoint of ``epoch`` (None:
    the latest) or an export folder's weights (``epoch`` None only); the EMA weights where
    there are some and ``use_ema``; its data read from ``data_dir`` where given (None: from its
    config's ``data.dir``). ``folder`` may name a shipped model (``"model1"``,
    ``pretrained.py``) where no file or folder of that name exists."""
    folder = model_folder(folder)
    if RunFolder(folder).is_export:
        if epoch is not None:
            raise UserError(f"epoch={epoch} applies to run folders; the export {folder} holds one")
        model = load_export(Path(folder), device, use_ema=use_ema)
    else:
        model = load_trained(Path(folder), epoch, device, use_ema=use_ema)
    if data_dir is None:
        return model
    reads_files, _, other = SWITCHED["data.dir"]
    if not reads_files(model.config):
        raise UserError(
            f"data_dir={data_dir} does not apply: {folder} was trained on data.dataset = "
            f"{model.config.data.dataset}, {other}, which no file holds"
        )
    data = dataclasses.replace(model.config.data, dir=str(Path(data_dir).expanduser().resolve()))
    return dataclasses.replace(model, config=dataclasses.replace(model.config, data=data))


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    format: str = "safetensors",
    epoch: int | None = None,
    ema: bool | None = None,
) -> Path:
    """Export the model of a run folder (``diffusiontools export``); returns the export folder.

    ``format``: safetensors or diffusers (see :meth:`TrainedModel.export`); ``epoch``: a kept
    checkpoint's epoch (None: the latest); ``ema``: None writes the EMA weights where the run
    kept them, else the raw ones; True insists on the EMA weights (refused for a run without
    them); False writes the raw weights. ``out``: None means ``RUN_DIR/exports/FORMAT`` (with
    ``_epoch_NNNN`` for an epoch). Raises DiffusionToolsError naming the bad argument.
    """
    check_format(format)
    if ema is not None and not isinstance(ema, bool):
        raise UserError(f"ema={ema!r} is not a choice of weights: give True, False or None")
    _check_epoch(epoch)
    run_dir = Path(run_dir)
    model = load_trained(run_dir, epoch, torch.device("cpu"), use_ema=ema is not False)
    if ema and not model.ema:
        raise UserError(
            f"ema=True asks for EMA weights, but {model.path} holds none (the run trained "
            "with training.ema_decay = 0); leave out ema=True to export its raw weights"
        )
    if out is None:
        out = RunFolder(run_dir).export(format, epoch)
    return model.export(out, format)
