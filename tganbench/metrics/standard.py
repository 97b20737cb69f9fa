"""The built-in metrics: FD and KID in the run's feature space, and the recognised share of samples."""

from __future__ import annotations

from tganbench.hookspecs import hookimpl
from tganbench.metric import Evaluation, Metric, MetricContext
from tganbench.metrics.recognition import recognition_scores


def _fd(evaluation: Evaluation) -> dict[str, float]:
    evaluator, features = evaluation.context.evaluator, evaluation.features()
    return {"fd": evaluator.fd(features), "fd_val": evaluator.validation_fd(features)}


def _kid(evaluation: Evaluation) -> dict[str, float]:
    mean, std = evaluation.context.evaluator.kid(evaluation.features())
    return {"kid_mean": mean, "kid_std": std}


def _recognised(evaluation: Evaluation) -> dict[str, float]:
    return recognition_scores(evaluation.samples, evaluation.context.families)


def _has_families(context: MetricContext) -> bool:
    return context.families is not None


FD = Metric(
    name="fd", title="FD", direction="lower", every_evaluation=True,
    columns={"fd": "fd_final", "fd_val": "fd_val_final"}, compute=_fd, threshold="10%", best=True, select_by="fd_val",
    description="Frechet distance to the held-out test images in the extractor's feature space (FID with "
                "inception); the best step is chosen on the validation images (fd_val)",
)
# KID over many subsets costs more than sampling, features and FD together on a CPU: final evaluation only.
KID = Metric(
    name="kid", title="KID", direction="lower", every_evaluation=False,
    columns={"kid_mean": "kid_mean", "kid_std": "kid_std"}, compute=_kid,
    description="kernel inception distance to the held-out images (mean and std over subsets)",
)
RECOGNISED = Metric(
    name="recognised", title="recognised", direction="higher", every_evaluation=True,
    columns={"recognised": "recognised", "recognised_source": "recognised_source"}, compute=_recognised,
    threshold="0.1", unit="share", applies=_has_families,
    description="% of the final samples the recognition network names as the target shape",
)


@hookimpl
def tganbench_register_metrics(register) -> None:
    """Register ``fd``, ``kid`` and ``recognised``."""
    register(FD)
    register(KID)
    register(RECOGNISED)
