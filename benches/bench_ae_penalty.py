"""Cost of the exact contractive penalty in an auto-encoder training step.

Times Adam steps of the paper's one-layer AE (2000 hidden units, tied weights, batch 128, 51 inputs,
2 intra-op threads by default) with the loss ``||y - f(y~)||^2 + lam ||dh/dy~||_F^2``, the penalty by

* ``closed form``: ``PoseAutoencoder.loss`` (``sum_k 1[a_k > 0] ||W_k||^2``);
* ``none``: the same step with ``lam = 0`` (penalty not computed): the baseline;
* ``jacfwd`` / ``jacrev``: per-sample Jacobians from ``torch.func`` (reference; ``jacrev`` at a smaller
  batch, as it materialises a (B, 2000, 2000) cotangent basis);

and prints steps/s, samples/s and the time per sample relative to the baseline (the step-time ratio at
equal batch; target for the closed form: <= 1.3x). The cases take turns within each repeat, so that
a change of machine load hits them all. ``--hidden 300 300`` times the two-layer AE (without the
reference paths). Run: ``.venv/bin/python benches/bench_ae_penalty.py [--steps 50 --repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from structpose.models import AEConfig, PoseAutoencoder

LAM = 0.1
LossFn = Callable[[PoseAutoencoder, torch.Tensor], torch.Tensor]


def closed_form_loss(ae: PoseAutoencoder, y: torch.Tensor) -> torch.Tensor:
    return ae.loss(y, train=True)[0]


def func_loss(ae: PoseAutoencoder, y: torch.Tensor, jacobian: Callable) -> torch.Tensor:
    """The one-layer loss with the penalty from per-sample ``torch.func`` Jacobians (B, h, 51)."""
    noisy = ae.layers[0].corrupt(y, train=True)
    recon = (ae(noisy) - y).square().sum(1).mean()
    jac = torch.func.vmap(jacobian(lambda v: ae.encode(v[None])[0]))(noisy)
    return recon + LAM * jac.square().sum((1, 2)).mean()


class Case:
    """One timed training loop: Adam on ``loss_fn`` for a fresh AE, on a fixed random batch of ``batch``."""

    def __init__(self, name: str, cfg: AEConfig, loss_fn: LossFn, batch: int, steps: int):
        self.name, self.batch, self.steps = name, batch, steps
        self.model = PoseAutoencoder(cfg, scale_mm=200.0).train()
        self.loss_fn = loss_fn
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-4)
        self.y = torch.randn(batch, self.model.in_dim)
        self.rates: list[float] = []
        self.run(3)  # warm-up

    def run(self, steps: int) -> None:
        for _ in range(steps):
            loss = self.loss_fn(self.model, self.y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def time(self) -> None:
        start = time.perf_counter()
        self.run(self.steps)
        self.rates.append(self.steps / (time.perf_counter() - start))

    @property
    def steps_per_s(self) -> float:
        return statistics.median(self.rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[2000])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--jacrev-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden = tuple(args.hidden)
    noise = (40.0, 20.0, 20.0, 20.0)[: len(hidden)]
    cfg, plain = AEConfig(hidden, noise, lam=LAM), AEConfig(hidden, noise, lam=0.0)
    batch, steps = args.batch, args.steps
    cases = [Case("none (lam = 0)", plain, closed_form_loss, batch, steps)]
    cases.append(Case("closed form", cfg, closed_form_loss, batch, steps))
    if len(hidden) == 1:
        few, jacfwd, jacrev = max(1, steps // 5), torch.func.jacfwd, torch.func.jacrev
        cases.append(Case("jacfwd", cfg, partial(func_loss, jacobian=jacfwd), batch, few))
        cases.append(Case("jacrev", cfg, partial(func_loss, jacobian=jacrev), args.jacrev_batch, few))
    for _ in range(args.repeats):
        for case in cases:
            case.time()
    print(f"AE {hidden}, 51 inputs, tied, Adam, {torch.get_num_threads()} threads, torch {torch.__version__}")
    base = cases[0].steps_per_s * cases[0].batch
    for case in cases:
        rate, batch = case.steps_per_s, case.batch
        print(f"  {case.name:<15} batch {batch:>4}: {rate:8.1f} steps/s {rate * batch:9.0f} samples/s  "
              f"time per sample x{base / (rate * batch):6.2f} of no penalty")  # fmt: skip


if __name__ == "__main__":
    main()
