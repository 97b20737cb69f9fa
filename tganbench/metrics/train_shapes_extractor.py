"""Train the ``tganbench-shapes`` feature extractor and write its weights next to this file.

Run: ``python -m tganbench.metrics.train_shapes_extractor`` (about a minute on a
2-core CPU). Training images use render seeds that the embedded pairs do not
use, so the extractor never sees the evaluation images.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tganbench.data.shapes import SHAPES, render_shapes_with_parameters
from tganbench.metrics.shapes_extractor import WEIGHTS_PATH, ShapesNet

TRAIN_SEED_OFFSET = 1000


def make_dataset(per_shape: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, shape labels and drawing parameters for every shape family."""
    images, labels, parameters = [], [], []
    for label, shape in enumerate(SHAPES):
        batch, params = render_shapes_with_parameters(shape, per_shape, resolution, seed + label)
        images.append(batch)
        parameters.append(params)
        labels.append(torch.full((per_shape,), label))
    return torch.cat(images), torch.cat(labels), torch.cat(parameters)


def main(argv: list[str] | None = None) -> None:
    """Train, report held-out accuracy and regression error, save the weights."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-shape", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=str(WEIGHTS_PATH))
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    images, labels, parameters = make_dataset(args.per_shape, 32, TRAIN_SEED_OFFSET)
    # Train at mixed resolutions so 16x16 and 64x64 runs are scored sensibly too.
    low_res, low_labels, low_params = make_dataset(args.per_shape // 4, 16, TRAIN_SEED_OFFSET + 100)
    low_res = F.interpolate(low_res.float(), size=32, mode="nearest").round().to(torch.uint8)
    images = torch.cat([images, low_res])
    labels = torch.cat([labels, low_labels])
    parameters = torch.cat([parameters, low_params])
    test_images, test_labels, test_params = make_dataset(500, 32, TRAIN_SEED_OFFSET + 200)

    net = ShapesNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps_per_epoch = len(images) // 128
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        order = torch.randperm(len(images))
        for i in range(steps_per_epoch):
            batch = order[i * 128 : (i + 1) * 128]
            out = net(images[batch])
            loss = F.cross_entropy(out["logits"], labels[batch]) + 10 * F.mse_loss(out["parameters"], parameters[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        with torch.no_grad():
            out = net(test_images)
            accuracy = (out["logits"].argmax(1) == test_labels).float().mean().item()
            error = (out["parameters"] - test_params).abs().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {accuracy:.4f}, parameter MAE {error:.4f}")
    with torch.no_grad():
        raw = torch.cat([net.body(images[i : i + 1000].float() / 127.5 - 1) for i in range(0, len(images), 1000)])
        net.feature_mean.copy_(raw.mean(0))
        net.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
