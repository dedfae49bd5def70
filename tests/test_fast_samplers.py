"""DDIM and DPM-Solver++ against oracle networks with closed-form answers, plus a contract test
that every Gaussian sampler in the registry passes.

The oracles know the data distribution exactly. For data x0 ~ N(m, s^2 I), x_t is Gaussian too and
the optimal eps prediction is linear in x_t:

    E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) m) / (a s^2 + 1 - a),   a = alpha_bar_t;

s = 0 is the single-point distribution x0 = m, where the prediction is exact for every x_t.
Every sampler step is then affine in x_t plus Gaussian noise, so the mean and variance of a
sampler's output follow from a short recursion in float64 (its "closed form").
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from diffusiontools.config import Config, DiffusionConfig, SamplingConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.noise import randn, sample_generators
from diffusiontools.errors import UserError
from diffusiontools.sampling.ddim import sample_ddim
from diffusiontools.sampling.dpm_solver import sample_dpm_solver
from diffusiontools.sampling.generation import generate
from diffusiontools.sampling.registry import SAMPLERS, get_sampler
from diffusiontools.sampling.timesteps import evenly_spaced_times

NOTEBOOK = DiffusionConfig(T=1000, beta1=1e-4, beta2=0.02)  # report model 1
SHORT = DiffusionConfig(T=100, beta1=1e-3, beta2=0.2)  # report model 2
COSINE = DiffusionConfig(T=100, schedule="cosine")
GAUSSIAN_SAMPLERS = [name for name, s in SAMPLERS.items() if s.kind == "gaussian"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests run thousands of tiny steps, which two threads only slow down on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_data_oracle(process: GaussianDiffusion, m: float | torch.Tensor, s: float):
    """model(x_t, t) giving the exact E[target | x_t] for data N(m, s^2 I), in the process's
    parametrisation (eps, x0 or v; all three are linear in eps and x0, so the means carry over)."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = process.alpha_bar_at(t).double()[:, None, None, None]  # t int, or real (sigma space)
        x = x_t.double()
        eps = (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s**2 + 1 - a)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return process.target(x0, eps, t).to(x_t.dtype)

    return model


def run(name: str, process, x_T, seed=0, **kwargs) -> torch.Tensor:
    sampler = SAMPLERS[name].sample
    model = kwargs.pop("model", None) or gaussian_data_oracle(process, 0.3, 0.0)
    return sampler(model, process, x_T, torch.Generator().manual_seed(seed), **kwargs)


# --- Exactness with a single-point oracle ------------------------------------------------------


@pytest.mark.parametrize("config", [NOTEBOOK, SHORT, COSINE], ids=["notebook", "short", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize(
    "sampler, kwargs",
    [(sample_ddim, {}), (sample_ddim, {"eta": 1.0}), (sample_dpm_solver, {})],
    ids=["ddim", "ddim-eta1", "dpm_solver"],
)
@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_single_point_oracle_is_reconstructed_exactly(config, prediction, sampler, kwargs, steps):
    process = GaussianDiffusion.from_config(dataclasses.replace(config, prediction=prediction))
    g = torch.Generator().manual_seed(steps)
    x0_star = torch.rand(1, 1, 28, 28, generator=g) - 0.5
    x_T = torch.randn(4, 1, 28, 28, generator=g)
    model = gaussian_data_oracle(process, x0_star, 0.0)
    x0 = sampler(model, process, x_T, g, steps=steps, **kwargs)
    # The last step returns x0_hat at the last time t_1 > 0; from an eps prediction that is
    # (x - sqrt(1 - a) eps_hat) / sqrt(a), whose float32 rounding grows like 1 / sqrt(a).
    t_1 = evenly_spaced_times(process.T, steps)[-2]
    atol = 1e-6 / process.alpha_bar[t_1].sqrt().item()
    assert torch.allclose(x0, x0_star.expand_as(x0), rtol=0, atol=atol)


@pytest.mark.parametrize("name, n_states", [("dpm_solver", 21), ("ddim", 101)])
def test_dpm_solver_default_is_20_steps_and_ddim_default_is_all(name, n_states):
    process = GaussianDiffusion.from_config(SHORT)
    times = []
    run(name, process, torch.randn(2, 1, 4, 4), on_step=lambda t, x: times.append(t))
    assert len(times) == n_states


# --- Distributions against closed forms ---------------------------------------------------------


def ancestral_moments(
    process: GaussianDiffusion, m: float, s: float, steps: int | None = None
) -> tuple[float, float]:
    """Mean and variance of Prince Alg. 18.2's output per pixel, from x_T ~ N(0, 1), on the
    times round(linspace(T, 0, steps + 1)) with beta = 1 - alpha_bar_t / alpha_bar_s per step
    (Nichol & Dhariwal's respacing; all T steps when ``steps`` is None)."""
    alpha_bar = process.alpha_bar.double().tolist()
    n = process.T if steps is None else steps
    times = [round(process.T * (1 - k / n)) for k in range(n + 1)]
    mean, var = 0.0, 1.0
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        a = alpha_bar[t]
        b = 1 - a / alpha_bar[t_next]
        g = math.sqrt(1 - a) / (a * s**2 + 1 - a)  # eps_hat = g (x - sqrt(a) m)
        coef = (1 - b / math.sqrt(1 - a) * g) / math.sqrt(1 - b)
        shift = b / math.sqrt(1 - a) * g * math.sqrt(a) * m / math.sqrt(1 - b)
        mean, var = coef * mean + shift, coef**2 * var + (b if t_next > 0 else 0.0)
    return mean, var


def ddim_moments(process: GaussianDiffusion, m: float, s: float, eta: float) -> tuple[float, float]:
    """Mean and variance of DDIM's output over all T steps (alpha_bar = 1 at the final t = 0)."""
    alpha_bar = [1.0] + process.alpha_bar.double().tolist()[1:]
    mean, var = 0.0, 1.0
    for t in range(process.T, 0, -1):
        a, a_next = alpha_bar[t], alpha_bar[t - 1]
        g = math.sqrt(1 - a) / (a * s**2 + 1 - a)
        # eps_hat = g x - g sqrt(a) m;  x0_hat = (x - sqrt(1 - a) eps_hat) / sqrt(a)
        eps_coef, eps_shift = g, -g * math.sqrt(a) * m
        x0_coef = (1 - math.sqrt(1 - a) * eps_coef) / math.sqrt(a)
        x0_shift = -math.sqrt(1 - a) * eps_shift / math.sqrt(a)
        sigma2 = eta**2 * (1 - a_next) / (1 - a) * (1 - a / a_next)
        direction = math.sqrt(1 - a_next - sigma2)
        coef = math.sqrt(a_next) * x0_coef + direction * eps_coef
        shift = math.sqrt(a_next) * x0_shift + direction * eps_shift
        mean, var = coef * mean + shift, coef**2 * var + sigma2
    return mean, var


@pytest.mark.parametrize("config, std", [(NOTEBOOK, 0.0081), (SHORT, 0.0220)])
def test_ancestral_residual_on_a_single_point_is_small_and_as_derived(config, std):
    # The notebook's last step (i = 1) does not return x0_hat: its output is
    # sqrt(alpha_bar_0) x0* + noise with alpha_bar_0 = 1 - beta1 and a noise std of 0.008
    # (T = 1000) or 0.022 (T = 100), so per pixel |x0 - x0*| < 0.03 is a 3.7 or 1.4 sigma bound.
    process = GaussianDiffusion.from_config(config)
    mean, var = ancestral_moments(process, 1.0, 0.0)
    assert mean == pytest.approx(math.sqrt(1 - config.beta1), rel=1e-6)
    assert math.sqrt(var) == pytest.approx(std, abs=1e-4)
    if config.T > 100:
        return  # sampling 1000 steps adds little over the T = 100 case below
    x0 = run("ancestral", process, torch.randn(20_000, 1, 1, 1, generator=torch.Generator()))
    residual = x0 - 0.3
    assert residual.mean().item() == pytest.approx(0.3 * (mean - 1), abs=4 * math.sqrt(var / 2e4))
    assert residual.std().item() == pytest.approx(math.sqrt(var), rel=0.03)


@pytest.mark.parametrize(
    "name, eta, closed_form",
    [
        ("ancestral", None, lambda p, m, s, eta: ancestral_moments(p, m, s)),
        ("ancestral-10", None, lambda p, m, s, eta: ancestral_moments(p, m, s, 10)),
        ("ancestral-3", None, lambda p, m, s, eta: ancestral_moments(p, m, s, 3)),
        ("ddim", 1.0, ddim_moments),
        ("ddim", 0.5, ddim_moments),
        ("ddim", 0.0, ddim_moments),
    ],
)
def test_output_mean_and_variance_match_the_closed_form_for_gaussian_data(name, eta, closed_form):
    # DDIM with eta = 1 and all T steps is the DDPM posterior sampler with sigma^2 = beta_tilde
    # and a final x0_hat; the notebook's sampler uses sigma^2 = beta and no final x0_hat. Their
    # outputs differ slightly, so each is checked against its own recursion.
    # The ancestral sampler on 10 or 3 of the T = 100 steps is improved-diffusion's respacing:
    # the same walk with beta_t replaced by 1 - alpha_bar_t / alpha_bar_s.
    process = GaussianDiffusion.from_config(SHORT)
    m, s, n = 0.3, 0.5, 80_000
    kwargs = {} if eta is None else {"eta": eta}
    name, _, steps = name.partition("-")
    if steps:
        kwargs["steps"] = int(steps)
    x_T = torch.randn(n // 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    x0 = run(name, process, x_T, model=gaussian_data_oracle(process, m, s), **kwargs)
    mean, var = closed_form(process, m, s, eta)
    assert x0.mean().item() == pytest.approx(mean, abs=4 * math.sqrt(var / n))
    assert x0.var().item() == pytest.approx(var, rel=4 * math.sqrt(2 / n))


def ode_endpoint(process: GaussianDiffusion, x_T: torch.Tensor, m: float, s: float, t_1: int):
    """Where the deterministic samplers should land for data N(m, s^2 I), in float64.

    With xbar = x / sqrt(a) and sigma^2 = (1 - a) / a, the probability-flow ODE keeps
    (xbar - m) / sqrt(s^2 + sigma^2) constant (DDIM eq. 14 with the linear eps above), which gives
    x_{t_1} exactly; the last step then returns x0_hat = m + s^2 (xbar - m) / (s^2 + sigma^2).
    """
    alpha_bar = process.alpha_bar.double()
    sigma2 = (1 - alpha_bar) / alpha_bar
    xbar_T = x_T.double() / alpha_bar[process.T].sqrt()
    xbar_1 = m + (xbar_T - m) * ((s**2 + sigma2[t_1]) / (s**2 + sigma2[process.T])).sqrt()
    return m + s**2 / (s**2 + sigma2[t_1]) * (xbar_1 - m)


def test_ode_samplers_converge_to_the_closed_form_endpoint_at_their_order():
    process = GaussianDiffusion.from_config(NOTEBOOK)
    m, s = 0.1, 0.4
    x_T = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    model = gaussian_data_oracle(process, m, s)

    def error(name: str, steps: int) -> float:
        t_1 = evenly_spaced_times(process.T, steps)[-2]
        x0 = run(name, process, x_T, model=model, steps=steps)
        return (x0 - ode_endpoint(process, x_T, m, s, t_1)).abs().max().item()

    # DDIM is Euler's method in sigma (first order): halving the step size halves the error.
    ddim = {steps: error("ddim", steps) for steps in (10, 20, 50, 100, 500, 1000)}
    assert ddim[1000] < 1e-2
    assert 1.6 < ddim[500] / ddim[1000] < 2.5
    # DPM-Solver++(2M) is second order: far more accurate than DDIM for the same evaluations.
    dpm = {steps: error("dpm_solver", steps) for steps in (10, 20, 50, 100, 500)}
    assert all(dpm[steps] < ddim[steps] / 2 for steps in dpm)
    assert dpm[500] < 1e-3 and dpm[100] / dpm[500] > 8


# --- The contract every Gaussian sampler keeps --------------------------------------------------


@pytest.mark.parametrize("name", GAUSSIAN_SAMPLERS)
def test_contract_shape_determinism_and_on_step_times(name):
    process = GaussianDiffusion.from_config(SHORT)
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x_T_copy = x_T.clone()
    calls: list[tuple[int, torch.Size]] = []
    x0 = run(name, process, x_T, seed=5, on_step=lambda t, x: calls.append((t, x.shape)))
    assert x0.shape == x_T.shape and x0.dtype == x_T.dtype and torch.isfinite(x0).all()
    assert torch.equal(x_T, x_T_copy), "the sampler must not change x_T in place"
    assert torch.equal(x0, run(name, process, x_T, seed=5))
    times = [t for t, _ in calls]
    assert times[0] == process.T and times[-1] == 0
    assert all(a > b for a, b in zip(times[:-1], times[1:], strict=False))
    assert all(shape == x_T.shape for _, shape in calls)


@pytest.mark.parametrize("name", GAUSSIAN_SAMPLERS)
def test_contract_gaussian_sampler_is_refused_for_a_cold_model(name):
    with pytest.raises(UserError, match=f"sampler '{name}' is for gaussian models"):
        get_sampler(name, "cold")


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpm_solver"])
def test_fast_samplers_visit_evenly_spaced_times_and_reject_bad_steps(name):
    process = GaussianDiffusion.from_config(SHORT)
    times = []
    run(name, process, torch.randn(1, 1, 4, 4), steps=4, on_step=lambda t, x: times.append(t))
    assert times == [100, 75, 50, 25, 0]
    for bad in (0, 101):
        with pytest.raises(UserError, match=f"steps={bad} is out of range.*1..100"):
            run(name, process, torch.randn(1, 1, 4, 4), steps=bad)


def test_ddim_rejects_eta_outside_0_1_and_only_draws_noise_when_eta_positive():
    process = GaussianDiffusion.from_config(SHORT)
    x_T = torch.randn(2, 1, 4, 4)
    model = gaussian_data_oracle(process, 0.3, 0.5)
    with pytest.raises(UserError, match="eta=1.5"):
        run("ddim", process, x_T, eta=1.5)
    deterministic = [run("ddim", process, x_T, seed=seed, model=model) for seed in (0, 1)]
    assert torch.equal(*deterministic)
    stochastic = [run("ddim", process, x_T, seed=seed, model=model, eta=1.0) for seed in (0, 1)]
    assert not torch.equal(*stochastic)


def test_generate_passes_the_configured_eta_to_ddim():
    class ZeroNet(torch.nn.Module):  # predicts eps = 0; enough to tell eta = 0 from eta = 1
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    config = Config(diffusion=SHORT, sampling=SamplingConfig(sampler="ddim", steps=10))
    process = GaussianDiffusion.from_config(SHORT)

    def draw(eta: float) -> torch.Tensor:
        sampling = dataclasses.replace(config.sampling, eta=eta)
        with_eta = dataclasses.replace(config, sampling=sampling)
        return generate(
            ZeroNet(), process, with_eta, 2, seed=0, device=torch.device("cpu"), shape=(1, 28, 28)
        )

    # generate seeds one generator per sample (noise.sample_generators), x_T is drawn from those.
    x_T = randn((2, 1, 28, 28), sample_generators(0, 0, 2, torch.device("cpu")), "cpu")
    direct = sample_ddim(lambda x, t: torch.zeros_like(x), process, x_T, torch.Generator(), 10)
    assert torch.equal(draw(0.0), direct)
    assert not torch.allclose(draw(0.0), draw(1.0))
