"""Benchmark: training throughput of the faithful step, as a share of this network's own ceiling.

Run as ``python -m bench.bench_training [--steps 20] [--repeats 3] [--threads N] [--compile]``.
Everything is measured side by side in one run, on one machine, in alternating repeats (so that
machine noise hits every variant alike); each figure is the median of the repeats, with the
min-max spread beside it.

- ceiling: what this network can do on this machine — its forward + backward on ready-made
  tensors (a batch of 128 x_t, its t/T and eps target, the MSE loss), with no data pipeline and
  no optimiser, at thread counts 1, 2, 4, ... up to the cores and in both memory formats (and,
  with ``--compile``, compiled, at the loops' thread count); its fastest single step, over all
  settings and repeats, is a candidate for the ceiling. The other candidate is the same forward +
  backward timed *inside* the loops' own steps (the batch before it and the optimiser after it
  untimed): on some machines the tight ready-made loop runs a few % slower than the same
  forward + backward between real steps (measured: 1-4%; memory and cache state, not the maths),
  so a ceiling from the ready-made loop alone could sit below a whole loop. The ceiling is the
  faster of the two; since every step of a loop contains its own timed forward + backward, no
  loop can exceed it, and a loop measured above it would be reported as a mis-measured
  ceiling, never as a share above 100%.
- loops: notebook — a plain re-creation of the starter notebook's loop: a ``Dataset`` that
  converts each image with a per-item transform (``ToTensor`` + ``Normalize((0.5,), (1.0,))``,
  written out here because torchvision is not a dependency), a ``DataLoader`` (batch 128,
  shuffle, 4 workers, drop_last), the DDPM loss and a plain ``torch.optim.Adam`` step; ours — one
  index into the in-memory uint8 tensor per batch and the trainer's own optimiser; variants of
  ours with channels_last, a plain for-loop Adam and (``--compile``) ``torch.compile``.
- the convolutions alone: each of the network's convolutions run forward + backward on inputs
  of its shapes, FLOPs counted by ``torch.utils.flop_counter``, as GFLOP/s.
- where a faithful step's time goes beyond the ceiling: batching and noise, the optimiser step,
  and the validation that the faithful configs run over the full held-out split every epoch.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from diffusiontools.config import Config, DiffusionConfig
from diffusiontools.data import load_mnist, shuffled_batches, to_model
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.process import training_loss
from diffusiontools.models import make_network
from diffusiontools.training.trainer import _make_optimizer
from diffusiontools.training.training_data import TrainingData
from diffusiontools.training.validation import validation_loss

from .machine import cores, describe, recorded, spread, torch_threads

BATCH = 128
CPU = torch.device("cpu")
# The faithful configs' epoch: 48,000 training and 12,000 validation images (80/20 of MNIST).
FAITHFUL_TRAIN, FAITHFUL_VAL = 48_000, 12_000


class NotebookMNIST(Dataset):
    """MNIST with the notebook's per-item transform: uint8 (28, 28) -> float (1, 28, 28) - 0.5."""

    def __init__(self, images: torch.Tensor):
        self.images = images.numpy()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.images[i]).float().div(255).unsqueeze(0)  # ToTensor
        return (x - 0.5) / 1.0  # Normalize((0.5,), (1.0,))


def _network(channels_last: bool = False) -> nn.Module:
    net = make_network(Config().model, seed=0, shape=(1, 28, 28))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _optimizer(net: nn.Module, adam: str) -> torch.optim.Optimizer:
    """``trainer``: the trainer's own choice; ``plain``: torch's CPU default, a per-tensor loop
    (the notebook's); ``fused``: torch's fused CPU kernel (rounds differently from plain)."""
    if adam == "trainer":
        return _make_optimizer(net, Config(), CPU)
    lr = Config().training.lr
    if adam == "fused":
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)
    return torch.optim.Adam(net.parameters(), lr=lr, foreach=False)


def step_fn(
    channels_last: bool = False,
    adam: str = "trainer",
    compile: bool = False,
    fwd_bwd_seconds: list[float] | None = None,
) -> Callable[[torch.Tensor], None]:
    """One faithful optimiser step on a batch x0 (B, 1, 28, 28): noise, loss, backward, Adam.
    ``fwd_bwd_seconds``: appended with each step's forward + loss + backward time (noise and
    x_t included, as ``training_loss`` draws them; the optimiser not)."""
    net = _network(channels_last)
    step_net = torch.compile(net) if compile else net
    process = GaussianDiffusion.from_config(DiffusionConfig())
    optimizer = _optimizer(net, adam)
    generator = torch.Generator().manual_seed(0)

    def step(x0: torch.Tensor) -> None:
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        training_loss(process, step_net, x0, generator).backward()
        if fwd_bwd_seconds is not None:
            fwd_bwd_seconds.append(time.perf_counter() - start)
        optimizer.step()

    return step


def _images_per_s(
    batches: Iterable, step: Callable, steps: int, in_step: list[float] | None = None
) -> float:
    """Images/s of ``steps`` steps after 2 warm-up steps, whose entries in ``in_step`` (the
    step's own forward + backward times, if it records them there) are dropped."""
    it = iter(batches)
    for x0 in itertools.islice(it, 2):
        step(x0)
    if in_step is not None:
        del in_step[-2:]
    start = time.perf_counter()
    for x0 in itertools.islice(it, steps):
        step(x0)
    return steps * BATCH / (time.perf_counter() - start)


def notebook_loop(images: torch.Tensor, steps: int, fwd_bwd_seconds: list[float]) -> float:
    loader = DataLoader(
        NotebookMNIST(images), batch_size=BATCH, shuffle=True, num_workers=4, drop_last=True
    )
    step = step_fn(adam="plain", fwd_bwd_seconds=fwd_bwd_seconds)
    return _images_per_s(loader, step, steps, fwd_bwd_seconds)


def our_batches(images: torch.Tensor) -> Iterable[torch.Tensor]:
    """The trainer's batches, epoch after epoch: one index into the uint8 tensor each."""
    generator = torch.Generator().manual_seed(0)
    while True:
        for idx in shuffled_batches(torch.arange(len(images)), BATCH, generator):
            yield to_model(images[idx])


def ready_made(channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch as the loss sees it: x_t (B, 1, 28, 28), t/T (B,) in [0, 1), eps (B, 1, 28, 28)."""
    generator = torch.Generator().manual_seed(0)
    x_t = torch.randn(BATCH, 1, 28, 28, generator=generator)
    eps = torch.randn(BATCH, 1, 28, 28, generator=generator)
    if channels_last:
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    return x_t, torch.randint(1, 1000, (BATCH,), generator=generator) / 1000, eps


def forward_backward_rate(net: nn.Module, channels_last: bool, steps: int) -> float:
    """Images/s of the network's forward + MSE + backward alone, on one ready-made batch, from
    the fastest of ``steps`` timed steps: a ceiling is the best the machine did, and on a busy
    machine the fastest step is the one least disturbed."""
    x_t, t, eps = ready_made(channels_last)
    seconds = []
    for i in range(steps + 1):  # the first is a warm-up
        start = time.perf_counter()
        F.mse_loss(net(x_t, t), eps).backward()
        for p in net.parameters():
            p.grad = None  # what zero_grad(set_to_none=True) does in a step
        if i:
            seconds.append(time.perf_counter() - start)
    return BATCH / min(seconds)


def thread_settings(n_cores: int) -> list[int]:
    """1, 2, 4, ... below ``n_cores``, and ``n_cores`` itself: the thread counts tried."""
    powers = [n for n in (2**i for i in range(n_cores.bit_length())) if n < n_cores]
    return [*powers, n_cores]


def ceiling_networks(compiled: bool) -> dict[str, nn.Module]:
    """The network in each form the ceiling is measured in (``torch.compile`` only if asked)."""
    nets = {"contiguous": _network(), "channels_last": _network(channels_last=True)}
    if compiled:
        nets["torch.compile"] = torch.compile(_network())
    return nets


def ceiling_sweep(
    nets: dict[str, nn.Module], steps: int, compiled_threads: int
) -> dict[tuple[int, str], float]:
    """Forward + backward images/s at every (threads, form) setting; the compiled network at
    the loops' thread count only (its code is generated for one)."""
    rates = {}
    for form, net in nets.items():
        tried = [compiled_threads] if form == "torch.compile" else thread_settings(cores())
        for threads in tried:
            with torch_threads(threads):
                rates[threads, form] = forward_backward_rate(net, form == "channels_last", steps)
    return rates


def share_of_ceiling(rate: float, ceiling: float) -> str:
    """``rate`` as a share of ``ceiling``; a rate above the ceiling means the ceiling is wrong."""
    if rate > ceiling:
        return f"above the ceiling by {rate / ceiling - 1:.1%}: ceiling mis-measured"
    return f"{rate / ceiling:.1%} of ceiling"


def training_flops(net: nn.Module) -> dict[str, float]:
    """FLOPs per image of forward + backward: ``total`` and ``convolutions`` (fwd + bwd)."""
    x_t, t, eps = ready_made()
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(net(x_t, t), eps).backward()
    per_op = counter.get_flop_counts()["Global"]
    conv = sum(n for op, n in per_op.items() if "convolution" in str(op))
    return {"total": counter.get_total_flops() / BATCH, "convolutions": conv / BATCH}


def convolutions_seconds(net: nn.Module, steps: int) -> float:
    """Seconds per batch of the network's convolutions alone, forward + backward, on inputs of
    the shapes they see in the network (the first needs no input gradient, as in the network)."""
    inputs: list[tuple[nn.Conv2d, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda m, args, out: inputs.append((m, args[0].detach())))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    x_t, t, _ = ready_made()
    with torch.no_grad():
        net(x_t, t)
    for h in hooks:
        h.remove()
    cases = [(conv, x.requires_grad_(i > 0)) for i, (conv, x) in enumerate(inputs)]
    grads = [torch.ones_like(conv(x)) for conv, x in cases]

    def run() -> None:
        for (conv, x), grad in zip(cases, grads, strict=True):
            conv(x).backward(grad)
        for conv, x in cases:
            conv.weight.grad = conv.bias.grad = x.grad = None

    run()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps


def step_parts_ms(images: torch.Tensor, steps: int, repeats: int) -> dict[str, float]:
    """Milliseconds per step (median of alternating repeats) of what a faithful step adds to
    the ceiling's forward + backward: the batch and its noise, and the optimiser step."""
    process = GaussianDiffusion.from_config(DiffusionConfig())
    generator = torch.Generator().manual_seed(0)
    batches = our_batches(images)

    def data() -> None:  # the batch, its noise and x_t, as the trainer makes them
        x0 = next(batches)
        noise = process.draw_noise(x0.shape, generator, CPU)
        process.q_sample(x0, noise["t"], noise["eps"])

    parts = {"batch, noise and x_t": data}
    for adam in ("trainer", "plain", "fused"):
        net = _network()
        optimizer = _optimizer(net, adam)
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        parts[f"Adam step ({adam})"] = optimizer.step
    times: dict[str, list[float]] = {name: [] for name in parts}
    for fn in parts.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def validation_seconds_per_batch(images: torch.Tensor, n_batches: int = 3) -> float:
    """Seconds per validation batch of 128, timed through the trainer's own ``validation_loss``."""
    n = n_batches * BATCH
    labels = torch.zeros(n, dtype=torch.long)
    data = TrainingData(images[:n], labels, images[:n], labels, {})
    base = Config()
    config = replace(base, training=replace(base.training, val_batches=n_batches))
    process = GaussianDiffusion.from_config(DiffusionConfig())
    net = _network()
    validation_loss(process, net, data, config, CPU)  # warm-up
    start = time.perf_counter()
    validation_loss(process, net, data, config, CPU)
    return (time.perf_counter() - start) / n_batches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per loop")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (median)")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads of the loops"
    )
    parser.add_argument(
        "--compile", action="store_true", help="add a torch.compile loop (compiles first)"
    )
    args = parser.parse_args(argv)
    images = load_mnist(None, "auto").train_images
    # each loop's forward + backward, timed inside its steps
    in_step: dict[str, list[float]] = collections.defaultdict(list)

    def ours(name: str, **options) -> Callable[[], float]:
        def run() -> float:  # a fresh network and optimiser each repeat, as the notebook's
            step = step_fn(**options, fwd_bwd_seconds=in_step[name])
            return _images_per_s(our_batches(images), step, args.steps, in_step[name])

        return run

    loops: dict[str, Callable[[], float]] = {
        "notebook": lambda: notebook_loop(images, args.steps, in_step["notebook"]),
        "ours": ours("ours"),
        "ours, channels_last": ours("ours, channels_last", channels_last=True),
        "ours, plain Adam": ours("ours, plain Adam", adam="plain"),
    }
    compile_seconds = None
    if args.compile:
        compiled = step_fn(compile=True, fwd_bwd_seconds=in_step["ours, torch.compile"])
        started = time.perf_counter()
        compiled(next(iter(our_batches(images))))
        compile_seconds = time.perf_counter() - started
        in_step["ours, torch.compile"].clear()  # the compiling step is no forward + backward rate
        loops["ours, torch.compile"] = lambda: _images_per_s(
            our_batches(images), compiled, args.steps, in_step["ours, torch.compile"]
        )
    nets = ceiling_networks(args.compile)
    # The loops use 4 loader workers + the threads; the ceiling sweep up to every core.
    with torch_threads(args.threads), recorded("training", own=max(args.threads, cores())):
        results: dict[str, list[float]] = {name: [] for name in loops}
        sweeps: list[dict[tuple[int, str], float]] = []
        for _ in range(args.repeats):  # alternate so that machine noise hits every variant alike
            sweeps.append(ceiling_sweep(nets, max(3, args.steps // 2), args.threads))
            for name, loop in loops.items():
                results[name].append(loop())
        net = _network()
        flops = training_flops(net)
        conv_s = convolutions_seconds(net, max(3, args.steps // 2))
        parts = step_parts_ms(images, args.steps, args.repeats)
        val_s = validation_seconds_per_batch(images)

        best = {s: max(sweep[s] for sweep in sweeps) for s in sweeps[0]}
        (sweep_threads, sweep_form), sweep_ceiling = max(best.items(), key=lambda kv: kv[1])
        in_step_rate = BATCH / min(min(times) for times in in_step.values())
        ceiling = max(sweep_ceiling, in_step_rate)
        where = (
            f"ready-made, {sweep_threads} threads, {sweep_form}"
            if sweep_ceiling >= in_step_rate
            else f"inside a loop's step, at {args.threads} threads"
        )
        print(
            f"training, faithful CNN (16,32,32,16), batch {BATCH}, loops at {args.threads} "
            f"threads, {args.steps} steps x {args.repeats} alternating repeats; "
            "median (min-max):\n  " + describe()
        )
        print(
            f"  ceiling (forward + backward alone, its fastest step): {ceiling:.1f} img/s "
            f"({where}) = {ceiling * flops['total'] / 1e9:.1f} GFLOP/s "
            f"({flops['total'] / 1e6:.1f} MFLOP per image, forward + backward)"
        )
        for (threads, form), rate in best.items():
            print(f"    ready-made, {threads} threads, {form:16s} {rate:7.1f} img/s")
        print(
            f"    inside the loops' steps, {args.threads} threads {in_step_rate:7.1f} img/s "
            f"(the ready-made loop's best is {sweep_ceiling / in_step_rate - 1:+.1%} from it)"
        )
        base = results["notebook"]
        for name, values in results.items():
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            print(
                f"  {name:22s} {spread(values)} img/s  {spread(ratios, '{:.2f}')}x notebook  "
                f"{share_of_ceiling(statistics.median(values), ceiling)}"
            )
        if compile_seconds is not None:
            print(f"  (torch.compile: first step, compiling, took {compile_seconds:.0f} s)")
        conv_gflops = flops["convolutions"] * BATCH / conv_s / 1e9
        print(
            f"  convolutions alone: {conv_gflops:.1f} GFLOP/s forward + backward at "
            f"{args.threads} threads ({conv_s * 1e3:.0f} ms per batch; "
            f"{flops['convolutions'] / flops['total']:.2%} of the network's FLOPs)"
        )
        ours_ms = BATCH / statistics.median(results["ours"]) * 1e3
        fwd_bwd_ms = statistics.median(in_step["ours"]) * 1e3
        print(
            f"  one step of ours, {ours_ms:.0f} ms: forward + backward {fwd_bwd_ms:.0f} ms "
            f"(of which convolutions {conv_s * 1e3:.0f} ms), "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in parts.items())
        )
        steps_per_epoch, val_batches = FAITHFUL_TRAIN // BATCH, FAITHFUL_VAL // BATCH
        val_epoch_s, train_epoch_s = val_batches * val_s, steps_per_epoch * ours_ms / 1e3
        print(
            f"  validation (faithful configs: {val_batches} batches every epoch): "
            f"{val_s * 1e3:.0f} ms per batch, {val_epoch_s:.0f} s per epoch = "
            f"{val_epoch_s / (val_epoch_s + train_epoch_s):.1%} of an epoch "
            f"({steps_per_epoch} steps, {train_epoch_s:.0f} s)"
        )


if __name__ == "__main__":
    main()
