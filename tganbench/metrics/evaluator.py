"""FD and KID of generated images against a held-out reference set, through torch-fidelity."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.utils import create_feature_extractor

from tganbench.errors import UsageError
from tganbench.metrics.extractors import ExtractorSpec
from tganbench.metrics.reference_cache import cached_features, reference_key
from tganbench.progress import Progress


class Evaluator:
    """Scores uint8 images; the extractor and the reference statistics are built once per run.

    ``reference`` holds the held-out *test* images every value is scored on;
    ``validation``, when given, further held-out images that only choose the best
    step (:meth:`validation_fd`), so that the step is never chosen on the images
    it is then reported on.

    With ``cache_dir``, the held-out features are cached on disk under a key of
    the images' content (and so resolution), the extractor, its weights and the
    torch-fidelity version, so a change to any of them never reuses stale features.
    Without ``build_features`` they must already be there (a worker process only
    loads what the run's driver computed).

    The extractor runs in eval mode without gradients (torch-fidelity sets that up);
    real and generated images reach it as uint8, the same conversion for both.
    """

    def __init__(
        self,
        spec: ExtractorSpec,
        reference: torch.Tensor,
        device: torch.device,
        kid_subsets: int,
        kid_subset_size: int,
        weights_path: str | None = None,
        batch_size: int = 100,
        cache_dir: Path | None = None,
        log: Callable[[str], None] = lambda message: None,
        quiet: bool = False,
        validation: torch.Tensor | None = None,
        build_features: bool = True,
    ) -> None:
        if spec.module:
            importlib.import_module(spec.module)
        self.spec = spec
        self.device = device
        self.quiet = quiet
        self.batch_size = batch_size
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        kwargs = {"verbose": False}
        if weights_path:
            kwargs["feature_extractor_weights_path"] = weights_path
        try:
            self.extractor = create_feature_extractor(
                spec.fidelity_name, [spec.feature_layer], cuda=device.type == "cuda", **kwargs
            )
        except (OSError, RuntimeError) as error:  # URLError is an OSError: no internet, no cached weights
            hint = "download them once elsewhere and pass --feature-extractor-weights PATH"
            if spec.weights_url and not weights_path:
                checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
                hint = (
                    f"download {spec.weights_url} once elsewhere and put it in {checkpoints}/ "
                    "or pass --feature-extractor-weights PATH"
                )
            raise UsageError(
                f"cannot load the weights of feature extractor '{spec.name}' ({type(error).__name__}: {error}); "
                f"without internet, {hint}"
            ) from None
        self.build_features = build_features
        self.n_reference = len(reference)
        self.n_validation = 0 if validation is None else len(validation)
        self.reference_key = reference_key(reference, spec, self.extractor)
        self.reference_features, self.reference_cached = self._held_out_features(reference, "test", cache_dir, log)
        self.reference_statistics = fid_features_to_statistics(self.reference_features)
        self.validation_statistics = None
        if validation is not None:
            features, _ = self._held_out_features(validation, "validation", cache_dir, log)
            self.validation_statistics = fid_features_to_statistics(features)

    def _held_out_features(self, images: torch.Tensor, part: str, cache_dir: Path | None,
                           log: Callable[[str], None]) -> tuple[torch.Tensor, bool]:
        """Features of held-out ``images`` and whether they came from the cache (never without ``cache_dir``)."""
        if cache_dir is None:
            return self.features(images), False
        key = reference_key(images, self.spec, self.extractor)
        path = Path(cache_dir) / "reference-features" / f"{self.spec.name}-{key}.pt"
        features, cached = cached_features(path, key, len(images), lambda: self.features(images), log,
                                           self.build_features)
        log(f"{part} features: {'reused' if cached else 'computed and cached'} "
            f"({len(images)} held-out images, {self.spec.name}) at {path}")
        return features, cached

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, D) on the CPU, as float64 for stable statistics."""
        out = []
        progress = Progress(len(images), f"features ({self.spec.name})", unit="image", quiet=self.quiet)
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device)
            out.append(self.extractor(batch)[0].double().cpu())
            progress.update(len(batch))
        progress.close()
        return torch.cat(out)

    def fd(self, features: torch.Tensor) -> float:
        """FD (or FID) between generated ``features`` (from :meth:`features`) and the reference."""
        statistics = fid_features_to_statistics(features)
        return fid_statistics_to_metric(self.reference_statistics, statistics, verbose=False)[KEY_METRIC_FID]

    def validation_fd(self, features: torch.Tensor) -> float:
        """FD between generated ``features`` and the validation images (NaN without validation images)."""
        if self.validation_statistics is None:
            return float("nan")
        statistics = fid_features_to_statistics(features)
        return fid_statistics_to_metric(self.validation_statistics, statistics, verbose=False)[KEY_METRIC_FID]

    def kid(self, features: torch.Tensor) -> tuple[float, float]:
        """KID mean and std over subsets between generated ``features`` and the reference."""
        scores = kid_features_to_metric(
            features,
            self.reference_features,
            kid_subsets=self.kid_subsets,
            kid_subset_size=min(self.kid_subset_size, len(features), self.n_reference),
            verbose=False,
        )
        return scores[KEY_METRIC_KID_MEAN], scores[KEY_METRIC_KID_STD]

    def score(self, images: torch.Tensor, kid: bool = True) -> dict[str, float]:
        """FD and KID mean/std of ``images`` (uint8, N x 3 x H x W) against the reference; KID NaN unless ``kid``."""
        features = self.features(images)
        kid_mean, kid_std = self.kid(features) if kid else (float("nan"), float("nan"))
        return {"fd": self.fd(features), "kid_mean": kid_mean, "kid_std": kid_std}
