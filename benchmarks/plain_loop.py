"""The reference to beat: a plain PyTorch GAN loop, written the way most training scripts are.

Same G, D, loss and optimiser as tganbench's loop, but the data live on the host
in a DataLoader, every batch is copied to the device, noise is drawn on the host,
and both losses are read back with ``.item()`` every step. fp32, no compilation.

Random numbers are drawn from one host generator in the same order as
tganbench's step (fake noise, real batch, generator noise), so on the CPU both
loops see identical batches and must produce identical losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler, TensorDataset


class RandomBatches(Sampler):
    """Yields ``steps`` batches of indices drawn with replacement from ``generator``."""

    def __init__(self, size: int, batch_size: int, steps: int, generator: torch.Generator) -> None:
        self.size, self.batch_size, self.steps, self.generator = size, batch_size, steps, generator

    def __iter__(self):
        for _ in range(self.steps):
            yield torch.randint(self.size, (self.batch_size,), generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.steps


def plain_train(
    g: torch.nn.Module,
    d: torch.nn.Module,
    images: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
) -> list[tuple[float, float]]:
    """Train ``g`` and ``d`` (already on ``device``) on uint8 host ``images``; returns (d_loss, g_loss) per step."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TensorDataset(images),
        batch_sampler=RandomBatches(len(images), batch_size, steps, generator),
        pin_memory=device.type == "cuda",
    )
    g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    z_dim = g.config.z_dim
    g.train()
    d.train()
    losses = []
    batches = iter(loader)
    for _ in range(steps):
        z = torch.randn(batch_size, z_dim, generator=generator).to(device)
        (real,) = next(batches)
        real = real.to(device).float() / 127.5 - 1
        with torch.no_grad():
            fake = g(z)
        d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

        z = torch.randn(batch_size, z_dim, generator=generator).to(device)
        g_loss = F.softplus(-d(g(z))).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        losses.append((d_loss.item(), g_loss.item()))
    return losses
