"""diffusiontools: train, sample and evaluate Gaussian and cold diffusion models on small images
(MNIST, Fashion-MNIST, CIFAR-10, folders of your own).

In a notebook::

    import diffusiontools as dt
    cfg = dt.load_config("quickstart", overrides={"training.max_steps": 200})
    model = dt.train(cfg, "runs/qs")                 # -> dt.TrainedModel
    x = model.sample(16, seed=0)                     # (16, 1, 28, 28) in [-0.5, 0.5]
    dt.show(x)                                       # a grid, inline
    result = dt.evaluate({"quickstart": model}, n_samples=200)
    result.table()

The public names below are imported on first use, so that ``import diffusiontools`` (and the
command line's ``--help``) stays fast and loads torch only when a call needs it.
"""

from __future__ import annotations

import importlib as _importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "Config": "config",
    "DiffusionToolsError": "errors",
    "TrainedModel": "training.trained_model",
    "TrainingStopped": "training.signals",
    "EvaluationResult": "api",
    "evaluate": "api",
    "load": "training.trained_model",
    "load_config": "training.run_config",
    "load_mnist": "data",
    "packaged_configs": "config",
    "show": "outputs.figures",
    "train": "api",
    "train_classifier": "api",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'diffusiontools' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    """The public names (what tab completion offers), not the module's own machinery."""
    return sorted([*_PUBLIC, "__version__"])
