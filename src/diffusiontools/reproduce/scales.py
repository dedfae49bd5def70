"""How much of the report's study a ``reproduce`` run does: smoke (tests), cpu (80 minutes),
report (the report's analysed epochs), full (every epoch of the configs).

A scale changes only how long models train, on how many images, and how much evaluation work is
done; the networks, schedules, losses, batch sizes and learning rates stay the report's (the
configs model1/model2/custom1/custom2). Every change a scale makes is printed and written into
reproduction.md, so no reader mistakes a cpu-scale number for the report's setting.
"""

from __future__ import annotations

import dataclasses

from ..errors import UserError

# The report's four models: config name -> the checkpoint epoch it analysed (REFERENCE.md).
REPORT_MODELS = {"model1": 120, "model2": 80, "custom1": 20, "custom2": 140}
# Beyond the report: the cold models again with one t and one random field per image.
PER_IMAGE_SUFFIX = "_per_image"


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    summary: str  # one line shown in the output and reproduction.md
    subset: int | None  # first N MNIST training images (None: all 60,000, split 80/20)
    epochs: int | None  # epochs for every model (None: see to_analysed)
    save_every: int | None  # None: each config's own
    n_samples: int  # samples per model (the report: 200)
    gaussian_sampler: tuple[str, int | None] | None  # (sampler, steps); None: the config's
    tsne_reference: int  # test images in the joint t-SNE (the report: 10,000)
    test_reference: int  # test images behind the classifier metrics
    n_boot: int
    n_boot_set: int
    extra: tuple[str, ...] = ()  # further ``--set`` overrides for every model
    # With epochs None: True trains each model exactly to the epoch the report analysed (epochs
    # 0..N), False trains every epoch of its config.
    to_analysed: bool = False
    eval_every: int = 0  # training.eval_every: the quality curve every N epochs (0: off)

    def analysed_epoch(self, model: str) -> int:
        """The checkpoint analysed: the report's choice at full scale, else the last epoch."""
        return REPORT_MODELS[model] if self.epochs is None else self.epochs - 1

    def overrides(self, model: str) -> list[str]:
        """``--set`` overrides applied to the report config of ``model`` at this scale."""
        sets = list(self.extra)
        if self.subset is not None:
            sets.append(f"data.subset={self.subset}")
        if self.epochs is not None:
            sets.append(f"training.epochs={self.epochs}")
        elif self.to_analysed:
            sets.append(f"training.epochs={REPORT_MODELS[model] + 1}")
        if self.eval_every:
            sets.append(f"training.eval_every={self.eval_every}")
        if self.save_every is not None:
            sets.append(f"training.save_every={self.save_every}")
        if self.gaussian_sampler is not None and model.startswith("model"):
            sampler, steps = self.gaussian_sampler
            sets.append(f"sampling.sampler={sampler}")
            if steps is not None:
                sets.append(f"sampling.steps={steps}")
        return sets


# The report's evaluation: 200 samples with the configs' samplers, t-SNE over all test images.
REPORT_EVALUATION = dict(
    n_samples=200,
    gaussian_sampler=None,
    tsne_reference=10_000,
    test_reference=10_000,
    n_boot=1000,
    n_boot_set=100,
)

SCALES = {
    "smoke": Scale(
        name="smoke",
        summary="pipeline check in a few minutes, the numbers mean nothing: a narrow CNN "
        "(two blocks of 8 channels), 400 training images, 2 epochs, 20 samples per model, DDIM 10 "
        "steps for the Gaussian models, 200 test images as evaluation references",
        subset=400,
        epochs=2,
        save_every=1,
        n_samples=20,
        gaussian_sampler=("ddim", 10),
        tsne_reference=200,
        test_reference=200,
        n_boot=20,
        n_boot_set=5,
        extra=("model.n_hidden=8,8", "training.val_batches=2", "data.source=auto"),
    ),
    "cpu": Scale(
        name="cpu",
        summary="about 80 minutes on 2 CPU cores: the first 12,000 MNIST training images "
        "(9,600 train / 2,400 validation), 6 epochs per model instead of the report's 20-140, "
        "the last epoch analysed; sampling and evaluation as the report (200 samples, "
        "ancestral / naive samplers, t-SNE over all 10,000 test images)",
        subset=12_000,
        epochs=6,
        save_every=2,
        **REPORT_EVALUATION,
    ),
    "report": Scale(
        name="report",
        summary="the report's models at its own scale: all 60,000 training images, each model "
        "trained exactly to the epoch the report analysed (120/80/20/140) and evaluated there, "
        "with the quality curve every 10 epochs, the per-image cold variants as long; about "
        "27 hours of one CPU core (14 hours of 2 cores with --jobs 2)",
        subset=None,
        epochs=None,
        save_every=None,
        to_analysed=True,
        eval_every=10,
        **REPORT_EVALUATION,
    ),
    "full": Scale(
        name="full",
        summary="the report's settings: all 60,000 training images, each config's epochs "
        "(500/500/80/180), the report's analysed checkpoints (120/80/20/140); a GPU job",
        subset=None,
        epochs=None,
        save_every=None,
        **REPORT_EVALUATION,
    ),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise UserError(f"scale={name!r} is not known; use one of: {', '.join(SCALES)}")
    return SCALES[name]
