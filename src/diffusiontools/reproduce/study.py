"""The reproduction's study: which runs and sample sets it holds, their configs, and its folder.

Shared by ``pipeline.py`` (the stages) and ``summary.py`` (reproduction.md), which both read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from ..device import describe_machine
from ..errors import UserError
from ..outputs.safe_writes import staged_outputs
from ..training.export import read_export
from ..training.pretrained import pretrained_folder, pretrained_names
from ..training.run_config import load_config
from ..training.run_folder import ensure_writable
from ..training.signals import TrainingStopped
from .scales import PER_IMAGE_SUFFIX, REPORT_MODELS, Scale

logger = logging.getLogger("diffusiontools.reproduce.pipeline")  # the stages log under one name

STATE_FILE = "reproduce.json"
COLD_MODELS = ("custom1", "custom2")
SHIPPED_SCALE = "report"  # the scale the shipped models were trained at


def run_names(shipped: bool = False) -> list[str]:
    """Every trained run: the report's four, then the per-image variants of the cold two (not
    with ``shipped``: the package ships the report's four only)."""
    per_image = [] if shipped else [m + PER_IMAGE_SUFFIX for m in COLD_MODELS]
    return [*REPORT_MODELS, *per_image]


def report_model(run_name: str) -> str:
    """The report config a run is built from (custom1_per_image -> custom1)."""
    return run_name.removesuffix(PER_IMAGE_SUFFIX)


def columns(shipped: bool = False) -> list[tuple[str, str, str | None]]:
    """Evaluated sample sets: (label, run name, sampler or None for the config's); with
    ``shipped``, those of the shipped models."""
    cols = [(m, m, None) for m in REPORT_MODELS]
    cols += [(f"{m} improved", m, "improved") for m in COLD_MODELS]
    if not shipped:
        cols += [(m + PER_IMAGE_SUFFIX, m + PER_IMAGE_SUFFIX, None) for m in COLD_MODELS]
    return cols


def study_config(run_name: str, scale: Scale):
    """The report's config of ``run_name`` with the scale's overrides (and per-image t)."""
    model = report_model(run_name)
    overrides = scale.overrides(model)
    if run_name.endswith(PER_IMAGE_SUFFIX):
        overrides.append("diffusion.t_per=image")
    return dataclasses.replace(load_config(model, overrides), name=run_name)


class Study:
    """One reproduction folder: its scale, its record of finished stages and their times.

    ``shipped``: the study of the models shipped in the package (``reproduce --skip-training``,
    trained at scale ``report``) rather than of models it trains into OUT/runs; recorded, so
    that a folder holds one kind of study only.
    """

    def __init__(
        self, out: Path, scale: Scale, device: torch.device, seed: int, shipped: bool = False
    ):
        self.out, self.scale, self.device, self.seed = Path(out), scale, device, seed
        self.shipped = shipped
        if shipped and scale.name != SHIPPED_SCALE:
            raise UserError(
                f"skip_training=True evaluates the shipped models, trained at scale "
                f"{SHIPPED_SCALE}; use scale={SHIPPED_SCALE}, not {scale.name!r}"
            )
        missing = [m for m in REPORT_MODELS if shipped and m not in pretrained_names()]
        if missing:
            raise UserError(
                f"skip_training=True evaluates the shipped models, but this install does not "
                f"ship {', '.join(missing)} (shipped: {', '.join(pretrained_names()) or 'none'}); "
                "train them instead (leave out skip_training=True)"
            )
        ensure_writable(self.out, "out", "the reproduction")
        self.state_path = self.out / STATE_FILE
        self.state = {"scale": scale.name, "seed": seed, "stages": {}, "machines": {}}
        if shipped:
            self.state["shipped"] = True
        if self.state_path.is_file():
            try:
                recorded = json.loads(self.state_path.read_text())
                if not isinstance(recorded, dict) or not isinstance(recorded.get("stages"), dict):
                    raise ValueError
            except (OSError, ValueError):  # json's own words would not help
                raise UserError(
                    f"{self.state_path} is not the record reproduce keeps (a JSON table of scale, "
                    "seed and stages); use another --out, or delete the file to start afresh"
                ) from None
            if (recorded.get("scale"), recorded.get("seed")) != (scale.name, seed):
                raise UserError(
                    f"{self.out} holds a reproduction at scale {recorded.get('scale')!r}, "
                    f"seed {recorded.get('seed')}; use another --out for scale "
                    f"{scale.name!r}, seed {seed}"
                )
            if recorded.get("shipped", False) != shipped:
                raise UserError(
                    f"{self.out} holds a reproduction of the shipped models (skip_training=True); "
                    "use another --out to train the models"
                    if not shipped
                    else f"{self.out} holds a reproduction that trains its models; use another "
                    "--out for skip_training=True"
                )
            self.state = {"machines": {}, **recorded}  # machines: absent from older records

    def run_names(self) -> list[str]:
        return run_names(self.shipped)

    def columns(self) -> list[tuple[str, str, str | None]]:
        return columns(self.shipped)

    def run_dir(self, run_name: str) -> Path:
        """The run folder of ``run_name``; with ``shipped``, the shipped model's export folder
        (its weights verified; a model not shipped is refused)."""
        if self.shipped:
            return pretrained_folder(run_name)
        return self.out / "runs" / run_name

    def data_config(self):
        """The ``[data]`` settings every model of the study trained on (the first run's)."""
        if self.shipped:
            return read_export(self.run_dir(self.run_names()[0]), torch.device("cpu"))[1].data
        return study_config(self.run_names()[0], self.scale).data

    def analysed_epoch(self, run_name: str) -> int | None:
        """The epoch whose checkpoint the study analyses; None for a shipped model, whose
        export holds that epoch's weights only."""
        return None if self.shipped else self.scale.analysed_epoch(report_model(run_name))

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage and record it with the machine it ran on, also a training stopped by a
        signal, whose work its checkpoint keeps (a stage resumed in later sessions adds up their
        times and lists each machine); on failure say which stage failed and why, and record
        nothing."""
        logger.info(f"reproduce: {name} ...")
        started = time.perf_counter()
        try:
            yield
        except TrainingStopped:
            self.record(name, time.perf_counter() - started)
            logger.info("reproduce: stopped; re-run the same command to resume where it stopped")
            raise
        except UserError as exc:
            raise UserError(f"reproduce stage '{name}' failed: {exc}") from exc
        except (RuntimeError, ValueError, OSError) as exc:
            raise UserError(
                f"reproduce stage '{name}' failed: {type(exc).__name__}: {exc} "
                "(re-run with --debug for the traceback; finished stages are kept)"
            ) from exc
        self.record(name, time.perf_counter() - started)

    def record(self, name: str, seconds: float, machine: str | None = None) -> None:
        """Add ``seconds`` to stage ``name``'s time and list ``machine`` (default: this
        process's, ``device.describe_machine``) among those it ran on; written at once."""
        stages, machines = self.state["stages"], self.state["machines"]
        stages[name] = round(seconds + stages.get(name, 0.0), 1)
        machine = machine or describe_machine(self.device)
        machines[name] = [*(m for m in machines.get(name, []) if m != machine), machine]
        with staged_outputs() as staging:  # whole or not at all: the next run reads it
            staging.file(self.state_path).write_text(json.dumps(self.state, indent=2) + "\n")
