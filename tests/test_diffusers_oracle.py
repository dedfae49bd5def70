"""diffusers' schedulers as an independent oracle for our Gaussian samplers.

Each test runs one of our samplers and the matching diffusers scheduler with the same betas, the
same network and the same x_T, and asserts that they agree to float rounding.

Conventions (docs/design.md, "Time grids: ours and diffusers'"):

- Schedule: our T + 1 betas, beta_0..beta_T (the notebook's linear schedule has beta_0 = beta1 > 0),
  go to diffusers as ``trained_betas`` with ``num_train_timesteps = T + 1``. Time t then means the
  same alpha_bar_t on both sides.
- Ancestral (Prince Alg. 18.2) evaluates the network at t = T..1, adds noise only for t > 1, and
  lands on index 0. ``DDPMScheduler(variance_type="fixed_large", clip_sample=False)`` with
  ``set_timesteps(T + 1)`` steps over t = T..0: it adds noise at every t > 0, including t = 1, and
  its extra step at t = 0 goes from index 0 to alpha_bar = 1. To align them, diffusers runs
  t = T..1 only, and its noise at t = 1 (the generators' next draw) is added to ours.
- Our DDIM evaluates at round(linspace(T, 0, K + 1)) and takes its last step to alpha_bar = 1.
  ``DDIMScheduler`` steps from t to t - (T + 1) // K and uses alpha_bar = 1 only below 0. With
  ``timestep_spacing="leading"`` and ``steps_offset = T // K`` (K divides T) it evaluates at our
  times, but its last step lands on index 0 (alpha_bar_0 = 1 - beta_0). Every state before that
  step is the same on both sides, and our result is its last x0_hat (``pred_original_sample``).
  With beta_0 = 0 (the cosine schedule) the last step agrees too. No diffusers spacing reproduces
  our grid on the notebook schedule; ``test_no_diffusers_spacing_reproduces_our_ddim`` measures by
  how much.
- Our DPM-Solver++(2M) evaluates at the same times and goes from the last one to the clean image.
  ``DPMSolverMultistepScheduler`` with its defaults (``linspace``, ``final_sigmas_type="zero"``,
  a lower-order final step) uses the same grid.
- ``sampling.timestep_spacing = trailing | leading | linspace`` gives our DDIM and DPM-Solver
  diffusers' grid of that name (``sampling/timesteps.py``). Each must then equal the scheduler
  configured with that ``timestep_spacing``.

Noise: both sides draw from the same per-sample generators, one per row, as
``sampling.generate`` seeds them. diffusers' ``randn_tensor`` draws row b with
``torch.randn(shape[1:], generator=generators[b])``, and so does ``diffusion.noise.randn``. So
diffusers gets ``step(..., generator=generators)``, each side with its own copies seeded alike.
diffusers draws in the model output's dtype. Ours draws in torch's default dtype, so the float64
tests set that dtype to float64 for their duration.

Precision: the network and the samples are float64. diffusers keeps ``trained_betas`` and
``alphas_cumprod`` in float32. DDPM and DDIM read only ``alphas_cumprod`` in ``step()``, so we
replace it by cumprod(1 - betas) in float64, from the same betas (these are float32 numbers, so
widening them is exact). That is diffusers' formula at our precision, and those comparisons hold
to 1e-12, relative and absolute. ``DPMSolverMultistepScheduler`` computes every step in float32
(``step()`` casts the sample). Measured ours vs it: at most 5.2e-7; asserted: 2e-6. The float32
library test runs ``TrainedModel.sample`` against diffusers as installed, with nothing replaced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from oracles import process64
from tiny_runs import single_thread  # noqa: F401 (autouse: thousands of tiny steps)
from torch.nn import functional as F
from torch.testing import assert_close

from diffusiontools.config import Config, DiffusionConfig, ModelConfig, SamplingConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.noise import randn, sample_generators
from diffusiontools.errors import UserError
from diffusiontools.models import make_network
from diffusiontools.sampling.ancestral import sample_ancestral
from diffusiontools.sampling.ddim import sample_ddim
from diffusiontools.sampling.dpm_solver import sample_dpm_solver
from diffusiontools.sampling.timesteps import CLEAN, ddim_grid, dpm_solver_grid, evenly_spaced_times
from diffusiontools.training.run_config import check_config
from diffusiontools.training.trained_model import TrainedModel

NOTEBOOK = DiffusionConfig(T=1000, beta1=1e-4, beta2=0.02)  # report model 1, beta_0 = 1e-4
SHORT = DiffusionConfig(T=100, beta1=1e-3, beta2=0.2)  # report model 2
COSINE = DiffusionConfig(T=1000, schedule="cosine")  # beta_0 = 0: index 0 is the clean image
PREDICTION_TYPE = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
DIFFUSERS_SPACINGS = ("trailing", "leading", "linspace")
SHAPE = (2, 1, 8, 8)  # two samples, each with its own generator
ROUNDING_64 = 1e-12  # float64 on both sides
ROUNDING_32 = 2e-6  # DPMSolverMultistepScheduler, which steps in float32


pytestmark = pytest.mark.usefixtures("float64")  # conftest: the same noise as diffusers


class StandIn:
    """A fixed network: the exact eps of data N(-0.3, 0.3^2 I), plus a fixed-weight convolution
    scaled by t / T, output in ``process.prediction``'s parametrisation.

    The exact part gives it the scale of a trained denoiser. The convolution makes the output
    nonlinear in x_t and dependent on t, so a wrong state or time would show.
    """

    M, S = -0.3, 0.3

    def __init__(self, process: GaussianDiffusion):
        g = torch.Generator().manual_seed(0)
        self.w1 = 0.5 * torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
        self.w2 = 0.5 * torch.randn(1, 4, 1, 1, generator=g, dtype=torch.float64)
        self.process = process

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.dim() == 0 else t  # diffusers passes one time
        a = self.process.alpha_bar_at(t).double()[:, None, None, None]  # t int, or real
        eps = (1 - a).sqrt() * (x - a.sqrt() * self.M) / (a * self.S**2 + 1 - a)
        h = torch.tanh(F.conv2d(x, self.w1.to(x.dtype), padding=1))
        eps = eps + 0.1 * (t / self.process.T)[:, None, None, None] * F.conv2d(h, self.w2)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return self.process.target(x0, eps, t).to(x.dtype)


def generators(seed: int = 10) -> list[torch.Generator]:
    """One generator per sample, seeded alike for each side."""
    return [torch.Generator().manual_seed(seed + b) for b in range(SHAPE[0])]


def x_T_64() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def scheduler(cls, process: GaussianDiffusion, float64: bool = True, **options):
    """diffusers' ``cls`` on our betas: ``trained_betas`` with ``num_train_timesteps = T + 1``.
    ``float64``: its alphas_cumprod, which step() reads, recomputed in float64 by its formula."""
    s = cls(
        num_train_timesteps=process.T + 1,
        trained_betas=process.beta.float().numpy(),
        prediction_type=PREDICTION_TYPE[process.prediction],
        **options,
    )
    if float64:
        s.alphas_cumprod = torch.cumprod(1 - process.beta.double(), dim=0)
    return s


@dataclasses.dataclass
class Run:
    states: list[torch.Tensor]  # after each step
    x0_hats: list[torch.Tensor | None]  # pred_original_sample of each step (DDPM, DDIM)


def diffusers_run(s, net, x_T: torch.Tensor, timesteps, **step_options) -> Run:
    """The loop of a diffusers pipeline: ``step(net(x, t), t, x)`` over ``timesteps``."""
    x, run = x_T.clone(), Run([], [])
    for t in timesteps:
        out = s.step(net(x, torch.as_tensor(t)), t, x, **step_options)
        x = out.prev_sample
        run.states.append(x)
        run.x0_hats.append(getattr(out, "pred_original_sample", None))
    return run


def recorded(sampler, *args, **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Our sampler's result and its states after each step (``on_step``)."""
    states: list[torch.Tensor] = []
    x0 = sampler(*args, on_step=lambda t, x: states.append(x), **kwargs)
    return x0, states[1:]  # states[0] is x_T


# --- ancestral == DDPMScheduler ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, prediction",
    [(NOTEBOOK, "eps"), (SHORT, "eps"), (COSINE, "eps"), (SHORT, "x0"), (SHORT, "v")],
    ids=["notebook", "short", "cosine", "short-x0", "short-v"],
)
def test_ancestral_equals_ddpm_scheduler(config, prediction):
    process = process64(config, prediction)
    net, x_T, ours_g = StandIn(process), x_T_64(), generators()
    ours, ours_states = recorded(sample_ancestral, net, process, x_T, ours_g)
    s = scheduler(DDPMScheduler, process, variance_type="fixed_large", clip_sample=False)
    s.set_timesteps(process.T + 1)
    assert s.timesteps.tolist() == list(range(process.T, -1, -1))
    theirs = diffusers_run(s, net, x_T, s.timesteps[:-1], generator=generators())  # t = T..1
    assert_close(  # the states at t = T - 1..1
        torch.stack(ours_states[:-1]),
        torch.stack(theirs.states[:-1]),
        rtol=ROUNDING_64,
        atol=ROUNDING_64,
    )
    # Landing on index 0 from t = 1: diffusers adds noise (its chain goes on to t = 0); ours not.
    final_noise = randn(SHAPE, ours_g, x_T.device)  # the T-th draw of each stream
    aligned = ours + process.beta[1].sqrt() * final_noise
    assert_close(aligned, theirs.states[-1], rtol=ROUNDING_64, atol=ROUNDING_64)
    assert (ours - theirs.states[-1]).abs().max() > 1e-3  # the noise of that step is no rounding


@pytest.mark.parametrize("config", [NOTEBOOK, COSINE], ids=["notebook", "cosine"])
@pytest.mark.parametrize("steps", [10, 37])
def test_respaced_ancestral_equals_ddpm_scheduler_on_custom_timesteps(config, steps):
    # Nichol & Dhariwal's respacing is diffusers' DDPMScheduler with custom timesteps and the
    # "fixed_large" variance: beta = 1 - alpha_bar_t / alpha_bar_prev at each step. Our grid
    # [T, ..., t_1, 0] is given whole, so the step from t_1 lands on index 0 in both.
    # The cosine schedule's alpha_bar_T ~ 1e-9 turns rounding of the ratio into ~1e-9 of a state.
    tol = ROUNDING_64 if config is NOTEBOOK else 1e-8
    process = process64(config)
    net, x_T, ours_g = StandIn(process), x_T_64(), generators()
    ours, ours_states = recorded(sample_ancestral, net, process, x_T, ours_g, steps=steps)
    times = evenly_spaced_times(process.T, steps)
    s = scheduler(DDPMScheduler, process, variance_type="fixed_large", clip_sample=False)
    s.set_timesteps(timesteps=times)
    theirs = diffusers_run(s, net, x_T, s.timesteps[:-1], generator=generators())
    assert len(theirs.states) == steps
    assert_close(
        torch.stack(ours_states[:-1]),
        torch.stack(theirs.states[:-1]),
        rtol=tol,
        atol=tol,
    )
    # The last step (t_1 -> 0): diffusers adds noise, ours does not (as for all T steps).
    t_1 = times[-2]
    beta = 1 - process.alpha_bar[t_1] / process.alpha_bar[0]
    aligned = ours + beta.sqrt() * randn(SHAPE, ours_g, x_T.device)
    assert_close(aligned, theirs.states[-1], rtol=tol, atol=tol)


# --- DDIM == DDIMScheduler ---------------------------------------------------------------------


@pytest.mark.parametrize("config", [NOTEBOOK, COSINE], ids=["notebook", "cosine"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [20, 50])
def test_ddim_on_our_grid_equals_ddim_scheduler_on_the_same_timesteps(config, eta, steps):
    process = process64(config)
    T, net, x_T = process.T, StandIn(process), x_T_64()
    ours, ours_states = recorded(sample_ddim, net, process, x_T, generators(), steps=steps, eta=eta)
    s = scheduler(
        DDIMScheduler,
        process,
        clip_sample=False,
        timestep_spacing="leading",
        steps_offset=T // steps,
    )
    s.set_timesteps(steps)
    assert s.timesteps.tolist() == [t for t, _ in ddim_grid(T, steps)]  # T, T - T/K, ..., T/K
    theirs = diffusers_run(s, net, x_T, s.timesteps, eta=eta, generator=generators())
    assert_close(
        torch.stack(ours_states[:-1]),
        torch.stack(theirs.states[:-1]),
        rtol=ROUNDING_64,
        atol=ROUNDING_64,
    )
    # The last step: ours lands on alpha_bar = 1 and returns x0_hat; diffusers' on index 0.
    assert_close(ours, theirs.x0_hats[-1], rtol=ROUNDING_64, atol=ROUNDING_64)
    if process.beta[0] == 0:  # cosine: index 0 is the clean image, the last steps agree too
        assert_close(ours, theirs.states[-1], rtol=ROUNDING_64, atol=ROUNDING_64)
    else:  # notebook: alpha_bar_0 = 1 - 1e-4, which leaves sqrt(1e-4) eps_hat in diffusers' x_0
        assert (ours - theirs.states[-1]).abs().max() > 1e-3


@pytest.mark.parametrize("spacing", DIFFUSERS_SPACINGS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [7, 20, 50])
def test_ddim_with_a_diffusers_spacing_equals_ddim_scheduler(spacing, eta, steps):
    process = process64(NOTEBOOK)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_ddim(
        net, process, x_T, generators(), steps=steps, eta=eta, timestep_spacing=spacing
    )
    s = scheduler(DDIMScheduler, process, clip_sample=False, timestep_spacing=spacing)
    s.set_timesteps(steps)
    assert s.timesteps.tolist() == [t for t, _ in ddim_grid(process.T, steps, spacing)]
    theirs = diffusers_run(s, net, x_T, s.timesteps, eta=eta, generator=generators())
    assert_close(ours, theirs.states[-1], rtol=ROUNDING_64, atol=ROUNDING_64)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_ddim_with_x0_and_v_prediction_equals_ddim_scheduler(prediction):
    process = process64(SHORT, prediction)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_ddim(
        net, process, x_T, generators(), steps=10, eta=1.0, timestep_spacing="trailing"
    )
    s = scheduler(DDIMScheduler, process, clip_sample=False, timestep_spacing="trailing")
    s.set_timesteps(10)
    theirs = diffusers_run(s, net, x_T, s.timesteps, eta=1.0, generator=generators())
    assert_close(ours, theirs.states[-1], rtol=ROUNDING_64, atol=ROUNDING_64)


# Measured with this file's StandIn, x_T and the notebook schedule (T = 1000), DDIM eta 0, ours
# against DDIMScheduler(timestep_spacing=...), clip_sample=False, otherwise out of the box:
OUT_OF_THE_BOX = {  # (spacing, steps): max |ours - diffusers'|
    ("trailing", 20): 0.00377,
    ("leading", 20): 0.0338,
    ("linspace", 20): 0.0970,
    ("trailing", 50): 0.00226,
    ("leading", 50): 0.0137,
    ("linspace", 50): 0.0363,
}


@pytest.mark.parametrize("spacing, steps", list(OUT_OF_THE_BOX), ids=str)
def test_no_diffusers_spacing_reproduces_our_ddim(spacing, steps):
    """The differences docs/design.md states: our grid is none of diffusers' three."""
    process = process64(NOTEBOOK)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_ddim(net, process, x_T, generators(), steps=steps)
    s = scheduler(
        DDIMScheduler, process, float64=False, clip_sample=False, timestep_spacing=spacing
    )
    s.set_timesteps(steps)
    theirs = diffusers_run(s, net, x_T, s.timesteps).states[-1]
    difference = (ours - theirs).abs().max().item()
    assert difference == pytest.approx(OUT_OF_THE_BOX[spacing, steps], rel=0.01)


# --- DPM-Solver++(2M) == DPMSolverMultistepScheduler -------------------------------------------


@pytest.mark.parametrize("spacing", ["ours", *DIFFUSERS_SPACINGS])
@pytest.mark.parametrize("steps", [7, 20, 50])
def test_dpm_solver_equals_dpm_solver_multistep_scheduler(spacing, steps):
    """``ours`` against the scheduler's defaults (linspace); each other spacing against itself."""
    process = process64(NOTEBOOK)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_dpm_solver(net, process, x_T, None, steps=steps, timestep_spacing=spacing)
    options = {} if spacing == "ours" else {"timestep_spacing": spacing}
    s = scheduler(DPMSolverMultistepScheduler, process, float64=False, **options)
    s.set_timesteps(steps)
    assert s.timesteps.tolist() == [t for t, _ in dpm_solver_grid(process.T, steps, spacing)]
    theirs = diffusers_run(s, net, x_T, s.timesteps).states[-1]
    assert_close(ours, theirs, rtol=0, atol=ROUNDING_32)


# --- the library's own float32 run, diffusers untouched ---------------------------------------


@pytest.mark.parametrize(
    "sampler, cls, options",
    [
        ("ddim", DDIMScheduler, {"eta": 1.0, "timestep_spacing": "trailing"}),
        ("ddim", DDIMScheduler, {"eta": 0.0, "timestep_spacing": "linspace"}),
        ("dpm_solver", DPMSolverMultistepScheduler, {"timestep_spacing": "leading"}),
        ("dpm_solver", DPMSolverMultistepScheduler, {}),
    ],
    ids=["ddim-eta1-trailing", "ddim-linspace", "dpm_solver-leading", "dpm_solver-ours"],
)
def test_float32_library_run_equals_diffusers(sampler, cls, options):
    """``TrainedModel.sample`` (a tiny untrained CNN, T = 20, 5 steps, seed 3) against a
    diffusers pipeline loop that starts from the same per-sample generators: x_T from their first
    draws (``randn_tensor``), DDIM's noise from the following ones."""
    torch.set_default_dtype(torch.float32)  # the library's dtype; the fixture restores float64
    model = tiny_model()
    net, process = model.net, model.process
    eta = options.get("eta")
    spacing = options.get("timestep_spacing")
    ours = model.sample(4, seed=3, sampler=sampler, steps=5, eta=eta, timestep_spacing=spacing)

    s = scheduler(cls, process, float64=False, **options_of(cls, options))
    s.set_timesteps(5)
    gens = sample_generators(3, 0, 4, torch.device("cpu"))
    x = randn_tensor((4, 1, 28, 28), generator=gens, dtype=torch.float32)
    with torch.no_grad():
        for t in s.timesteps:
            t_unit = torch.full((4,), int(t), dtype=torch.float32) / process.T
            step_options = {"eta": eta, "generator": gens} if cls is DDIMScheduler else {}
            x = s.step(net(x, t_unit), t, x, **step_options).prev_sample
    assert_close(ours, x, rtol=0, atol=1e-5)  # measured: up to 3.8e-6 on values up to 13


def tiny_model() -> TrainedModel:
    """An untrained CNN (8, 8 channels) on the short schedule cut to T = 20, never saved."""
    diffusion = dataclasses.replace(SHORT, T=20)
    config = Config(model=ModelConfig(n_hidden=(8, 8)), diffusion=diffusion).check()
    net = make_network(config.model, seed=0, shape=(1, 28, 28)).eval()
    process = GaussianDiffusion.from_config(diffusion)
    return TrainedModel(config, net, process, epoch=0, path=Path("unsaved"))


def options_of(cls, options: dict) -> dict:
    """The scheduler's own options of a row: its spacing, and no clipping for DDIM."""
    own = {k: v for k, v in options.items() if k == "timestep_spacing"}
    return {**own, "clip_sample": False} if cls is DDIMScheduler else own


# --- the grids, written out; what diffusers does where we refuse ------------------------------


def test_the_grids_for_T_20_and_5_steps():
    """Hand-computed from diffusers' set_timesteps (num_train_timesteps = 21). DDIM's stride is
    21 // 5 = 4, so trailing and linspace step to a time they do not evaluate next."""
    C = CLEAN
    assert ddim_grid(20, 5) == [(20, 16), (16, 12), (12, 8), (8, 4), (4, C)]
    assert dpm_solver_grid(20, 5) == ddim_grid(20, 5)
    # trailing: round(arange(21, 0, -4.2)) - 1 = 20, 16, 12, 7, 3
    assert ddim_grid(20, 5, "trailing") == [(20, 16), (16, 12), (12, 8), (7, 3), (3, C)]
    assert dpm_solver_grid(20, 5, "trailing") == [(20, 16), (16, 12), (12, 7), (7, 3), (3, C)]
    # leading: arange(5) * 4 for DDIM; arange(6) * (21 // 6 = 3), without 0, for DPM-Solver
    assert ddim_grid(20, 5, "leading") == [(16, 12), (12, 8), (8, 4), (4, 0), (0, C)]
    assert dpm_solver_grid(20, 5, "leading") == [(15, 12), (12, 9), (9, 6), (6, 3), (3, C)]
    # linspace: round(linspace(0, 20, 5)) for DDIM; linspace(0, 20, 6) without 0 for DPM-Solver
    assert ddim_grid(20, 5, "linspace") == [(20, 16), (15, 11), (10, 6), (5, 1), (0, C)]
    assert dpm_solver_grid(20, 5, "linspace") == dpm_solver_grid(20, 5)


def test_a_trailing_grid_holding_t_minus_1_is_refused():
    """For T = 20 and 15 steps, numpy's float arange makes diffusers' trailing grid 16 times long,
    the last -1 (which indexes alphas_cumprod from the end); we refuse it."""
    s = DDIMScheduler(num_train_timesteps=21, timestep_spacing="trailing")
    s.set_timesteps(15)
    assert len(s.timesteps) == 16 and s.timesteps[-1] == -1
    for grid in (ddim_grid, dpm_solver_grid):
        with pytest.raises(UserError, match="holds 16 times, the last t = -1"):
            grid(20, 15, "trailing")


def test_a_grid_evaluating_the_cosine_t_0_is_refused():
    """DDIM's leading grid ends at t = 0, where the cosine alpha_bar is 1: diffusers returns NaN."""
    process = process64(dataclasses.replace(COSINE, T=100))
    net, x_T = StandIn(process), x_T_64()
    s = scheduler(DDIMScheduler, process, clip_sample=False, timestep_spacing="leading")
    s.set_timesteps(5)
    assert torch.isnan(diffusers_run(s, net, x_T, s.timesteps).states[-1]).all()
    with pytest.raises(UserError, match="timestep_spacing=leading evaluates the network at t=0"):
        sample_ddim(net, process, x_T, None, steps=5, timestep_spacing="leading")


def test_sampling_config_refuses_a_spacing_where_it_cannot_take_effect():
    def check(**sampling) -> None:
        check_config(Config(diffusion=SHORT, sampling=SamplingConfig(**sampling)))

    check(sampler="ddim", timestep_spacing="trailing", steps=10)
    check(sampler="dpm_solver", timestep_spacing="leading")
    with pytest.raises(UserError, match="timestep_spacing=trailing applies to the ddim and dpm"):
        check(timestep_spacing="trailing")  # the default sampler: ancestral
    with pytest.raises(UserError, match="sampling.timestep_spacing=trailing with steps=49"):
        check(sampler="ddim", timestep_spacing="trailing", steps=49)


def test_trained_model_sample_refuses_a_spacing_where_it_cannot_take_effect():
    model = tiny_model()
    with pytest.raises(UserError, match="timestep_spacing=leading applies to the ddim and dpm"):
        model.sample(2, sampler="ancestral", timestep_spacing="leading")
    with pytest.raises(UserError, match="timestep_spacing='fast' is not allowed"):
        model.sample(2, sampler="ddim", timestep_spacing="fast")
