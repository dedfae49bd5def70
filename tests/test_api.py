"""The public API as a notebook user types it, each call in a fresh Python process where it
matters (imports, matplotlib's backend, the global RNG, stdout)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from tiny_runs import TINY_INI, reference_run, run_python, single_thread  # noqa: F401

import diffusiontools as dt


def run_in_folder(code: str, tmp_path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter in ``tmp_path``, beside a tiny.ini."""
    (tmp_path / "tiny.ini").write_text(TINY_INI)
    return run_python(code, cwd=tmp_path)


def test_a_notebook_session_from_import_to_samples(tmp_path):
    """import, train tiny, load, sample, show: the backend, the global RNG and stdout untouched,
    and the loaded model samples the same images as the trained one."""
    done = run_in_folder(
        """
        import json, sys
        import matplotlib
        matplotlib.use("svg")  # a caller's backend choice, which we must leave alone
        import torch
        torch.manual_seed(123)
        rng_before = torch.random.get_rng_state()
        import diffusiontools as dt
        cfg = dt.load_config("tiny.ini", overrides={"training.epochs": 1})
        model = dt.train(cfg, "runs/tiny")
        again = dt.load("runs/tiny", device="cpu")
        x = model.sample(4, seed=0)
        y = again.sample(4, seed=0)
        shown = dt.show(x)
        png = shown._repr_png_()
        print(json.dumps({
            "backend": matplotlib.get_backend(),
            "rng_kept": bool(torch.equal(rng_before, torch.random.get_rng_state())),
            "shape": list(x.shape),
            "same": bool(torch.equal(x, y)),
            "finite": bool(x.isfinite().all()),
            "png": png[:8] == b"\\x89PNG\\r\\n\\x1a\\n",
            "type": type(model).__name__,
            "epoch": model.epoch,
        }))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()  # the library printed nothing on stdout
    assert json.loads(line) == {
        "backend": "svg",
        "rng_kept": True,
        "shape": [4, 1, 28, 28],
        "same": True,
        "finite": True,
        "png": True,
        "type": "TrainedModel",
        "epoch": 0,
    }


def test_importing_loads_no_torch_and_lists_every_public_name(tmp_path):
    done = run_in_folder(
        """
        import sys
        import diffusiontools as dt
        print("torch" in sys.modules)
        print(all(callable(getattr(dt, name)) for name in dt.__all__))
        print(dir(dt) == sorted([*dt.__all__, "__version__"]))  # no annotations, importlib
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True"]


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: dt.load_config("modl1"), "'modl1' is neither a file nor a packaged config"),
        (lambda: dt.load_config("quickstart", {"training.lrr": 1}), "did you mean 'lr'"),
        (lambda: dt.load_config("quickstart", {"training.epochs": 0}), "training.epochs=0"),
        (lambda: dt.load("no/such/run"), "run folder no/such/run does not exist"),
        (lambda: dt.load(None), "run_dir=None is not a folder"),
        (lambda: dt.load(reference_run(), epoch=9), "epochs with one: 0, 1, 2"),
        (lambda: dt.load(reference_run(), device="tpu"), "'tpu'"),
        (lambda: dt.load(reference_run()).sample(2, digit=3), "digit=3 needs a class-cond"),
        (lambda: dt.load(reference_run()).sample(2, steps=25), "sampling.steps=25 is out of range"),
        (lambda: dt.load(reference_run()).sample(2, guidance=3), "sampling.guidance=3"),
        (
            lambda: dt.load(reference_run()).sample(2, eta=0.5),
            "sampling.eta=0.5 applies to the ddim",
        ),
        (lambda: dt.load(reference_run()).sample(2, sampler="naive"), "'naive' is for cold"),
        (lambda: dt.load(reference_run()).sample(0), "n=0 is not a number of samples"),
        (lambda: dt.load(reference_run()).sample(2, eta=2.0), "sampling.eta=2.0 is out of range"),
        (lambda: dt.load(reference_run()).sample(2, sampler="ddim", steps=99), "1..20"),
    ],
)
def test_a_bad_argument_raises_the_library_error_naming_it(call, fragment):
    with pytest.raises(dt.DiffusionToolsError) as error:
        call()
    assert fragment in str(error.value)
    assert isinstance(error.value, ValueError)


def test_numpy_and_tensor_integers_are_numbers_as_a_notebook_passes_them():
    model = dt.load(reference_run(), device="cpu")
    expected = model.sample(2, seed=3, sampler="ddim", steps=5)
    labels = np.array([2, 3])  # e.g. a count and a seed taken from arrays
    assert torch.equal(
        model.sample(labels[0], seed=torch.tensor(3), sampler="ddim", steps=np.int64(5)), expected
    )
    with pytest.raises(dt.DiffusionToolsError, match="n=np.True_ is not an int"):
        model.sample(np.bool_(True))


def test_sampling_options_override_the_run_and_take_effect():
    model = dt.load(reference_run(), device="cpu")
    ancestral = model.sample(3, seed=1)
    ddim = model.sample(3, seed=1, sampler="ddim", steps=5)
    ddim_eta = model.sample(3, seed=1, sampler="ddim", steps=5, eta=1.0)
    clipped = model.sample(3, seed=1, sampler="ddim", steps=5, clip_x0=True)
    for other in (ddim, ddim_eta, clipped):
        assert not torch.equal(other, ancestral)
    assert not torch.equal(ddim, ddim_eta) and not torch.equal(ddim, clipped)
    assert torch.equal(ddim, model.sample(3, seed=1, sampler="ddim", steps=5))  # seeded
    assert model.config.sampling.sampler == "default"  # the model's own config is unchanged
    times, states = model.trajectory(2, seed=1, sampler="ddim", steps=5)
    assert (
        times[0] == 20
        and times[-1] == 0
        and torch.equal(states[-1], model.sample(2, seed=1, sampler="ddim", steps=5))
    )


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: dt.load_config(5), "config=5 is not a config"),
        (lambda: dt.load_config("quickstart", "training.epochs=2"), "is one string"),
        (lambda: dt.train({"training.epochs": 1}, "d"), "is not a config"),
        (lambda: dt.load(reference_run(), epoch="0"), "epoch='0' is not an epoch number"),
        (lambda: dt.load(reference_run() / "config.ini"), "is a file: give the run folder"),
        (lambda: dt.load(reference_run()).sample(2.5), "n=2.5 is not an int"),
        (lambda: dt.load(reference_run()).sample(2, steps=True), "steps=True is not an int"),
        (lambda: dt.load(reference_run()).sample(2, guidance=float("nan")), "not a finite"),
        (
            lambda: dt.show(torch.zeros(28, 28)),
            "(N, H, W) or (N, C, H, W) with C 1 or 3, not (28, 28)",
        ),
        (lambda: dt.show(torch.zeros(4, 2, 28, 28)), "not (4, 2, 28, 28)"),
        (lambda: dt.show(torch.zeros(0, 1, 28, 28)), "no images"),
        (lambda: dt.show([1, 2]), "not list"),
        (lambda: dt.show(torch.full((2, 28, 28), float("nan"))), "NaN or inf"),
        (lambda: dt.evaluate([1]), "non-empty dict"),
        (lambda: dt.evaluate({1: torch.zeros(20, 28, 28)}), "labels must be strings"),
        (lambda: dt.evaluate({"x": np.zeros((20, 2, 28, 28), np.uint8)}), "not (20, 2, 28, 28)"),
        (
            lambda: dt.evaluate({"x": np.zeros((20, 3, 28, 28), np.uint8)}),
            "holds 3x28x28 images, but data.dataset = mnist gives 1x28x28 images",
        ),
        (lambda: dt.evaluate({"x": np.zeros((20, 28, 28), np.int64)}), "torch.int64"),
        (lambda: dt.evaluate({"x": np.full((20, 28, 28), 200.0)}), "look like pixels in 0..255"),
        # pixels in [0, 1], the usual float convention, would be read half a range too bright
        (
            lambda: dt.evaluate({"x": np.full((20, 28, 28), 0.7, np.float32)}),
            "span 0.7..0.7, which look like pixels in [0, 1], not the model range [-0.5, 0.5]: "
            "subtract 0.5, or give them as uint8",
        ),
        # finite in float64, infinite once float32
        (lambda: dt.evaluate({"x": np.full((20, 28, 28), -1e39)}), "NaN or inf as float32"),
        (lambda: dt.evaluate({"x": np.zeros((20, 28, 28))}, n_samples=0), "n_samples=0"),
        (lambda: dt.evaluate({"x": np.zeros((20, 28, 28))}, n_boot=2.5), "n_boot=2.5 is not a"),
        (
            lambda: dt.evaluate({"x": np.zeros((20, 32, 32), np.uint8)}),
            "holds 1x32x32 images, but data.dataset = mnist gives 1x28x28 images",
        ),
    ],
)
def test_a_wrongly_typed_argument_raises_the_library_error(call, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dt.evaluate's default output folder
    with pytest.raises(dt.DiffusionToolsError) as error:
        call()
    assert fragment in str(error.value)


def test_a_tensor_that_requires_grad_is_taken_as_its_values():
    """It raised torch's "Can't call numpy() on Tensor that requires grad"."""
    from diffusiontools.api import checked_images

    x = torch.full((2, 28, 28), -0.25, requires_grad=True)
    floats = checked_images("x", x)
    assert floats.shape == (2, 1, 28, 28) and floats.dtype == np.float32
    assert np.array_equal(floats, np.full((2, 1, 28, 28), -0.25, np.float32))


def test_evaluate_checks_everything_before_it_writes_and_keeps_an_earlier_evaluation(tmp_path):
    model = dt.load(reference_run(), device="cpu")
    out = tmp_path / "new" / "evaluation"
    with pytest.raises(dt.DiffusionToolsError, match="tsne_reference=5 must be between 10"):
        dt.evaluate({"m": model}, n_samples=10, out=out, tsne_reference=5, device="cpu")
    assert not (tmp_path / "new").exists()  # not even the model's samples were written
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    with pytest.raises(dt.DiffusionToolsError) as refused:
        dt.evaluate({"m": model}, 10, earlier, tsne_reference=50, test_reference=50, device="cpu")
    assert str(refused.value) == (
        f"{earlier / 'metrics.json'} already exists; choose another folder with out=DIR, or "
        "replace the evaluation there with overwrite=True"
    )
    assert sorted(p.name for p in earlier.iterdir()) == ["metrics.json"]
