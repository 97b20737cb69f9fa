"""Final-evaluation verdicts: precision, recall, data copying and diversity in the run's feature space.

FD says how far the samples are from the held-out images, but not why. These
metrics split the verdict: are the samples realistic (``precision``), do they
cover the held-out images (``recall``), are they copies of the training shots
(``copying``, the data-copying test of Meehan et al.), and do the samples near
each shot differ from one another (``diversity``)? All four are computed at the
final evaluation only, against ``evaluator.reference_features`` (the test part
of the held-out images) and, for the last two, the cell's training shots.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import rankdata
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from tganbench.hookspecs import hookimpl
from tganbench.metric import Evaluation, Metric

NEIGHBOURHOOD = 3  # k of Kynkaanniemi et al.: a point's manifold ball reaches its 3rd nearest neighbour
HELD_OUT_PER_CELL = 20  # the data-copying test makes about one cell per 20 held-out images
MIN_HELD_OUT_IN_CELL = 5  # a cell counts with at least this many held-out points...
MIN_GENERATED_IN_CELL = 5  # ...and at least this many generated points...
MIN_GENERATED_SHARE = 0.02  # ...and at least this share (tau) of the generated points
COPYING_THRESHOLD = -3.0  # C_T below this reads as data copying


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = NEIGHBOURHOOD) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` against ``real`` features (Kynkaanniemi et al., 2019).

    Precision is the share of ``fake`` points inside some real point's ball (the
    ball reaching that point's k-th nearest real neighbour); recall is the share
    of ``real`` points inside some fake point's ball. Computed by torch-fidelity.
    Returns (NaN, NaN) when either set has no more than ``k`` points.
    """
    if len(real) <= k or len(fake) <= k:
        return math.nan, math.nan
    scores = prc_features_to_metric(fake, real, prc_neighborhood=k, verbose=False)  # torch-fidelity: generated first
    return scores[KEY_METRIC_PRECISION], scores[KEY_METRIC_RECALL]


def kmeans(points: torch.Tensor, k: int, seed: int = 0, iterations: int = 50) -> torch.Tensor:
    """Centroids (k, D) of ``points`` (N, D) by Lloyd's algorithm from a seeded k-means++ start.

    Deterministic for a given ``seed``. A centroid that loses all its points
    stays where it was. Stops early when no assignment changes.
    """
    if not 1 <= k <= len(points):
        raise ValueError(f"kmeans: k must be between 1 and the number of points ({len(points)}), got {k}")
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, k):
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)  # all points already chosen
        index = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(index)
        nearest = torch.minimum(nearest, ((points - points[index]) ** 2).sum(dim=1))
    centroids = points[chosen].clone()
    assignment = None
    for _ in range(iterations):
        new_assignment = torch.cdist(points, centroids).argmin(dim=1)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).to(points.dtype)
    return centroids


def mann_whitney_z(generated: torch.Tensor, held_out: torch.Tensor) -> float:
    """The normal-approximation z-score of the Mann-Whitney U of ``generated`` against ``held_out`` values.

    U counts the pairs (g, h) with g > h, a tie counting one half;
    z = (U - m n / 2) / sqrt(m n (m + n + 1) / 12), with n generated and m held-out
    values. z < 0: the generated values tend to be smaller.
    """
    n, m = len(generated), len(held_out)
    ranks = rankdata(torch.cat([generated, held_out]).numpy())  # ties get their mean rank
    u = float(ranks[:n].sum()) - n * (n + 1) / 2
    return (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)


def data_copying(train: torch.Tensor, held_out: torch.Tensor, generated: torch.Tensor, seed: int = 0) -> float:
    """The data-copying statistic C_T of Meehan, Chaudhuri and Dasgupta (AISTATS 2020).

    Space is cut into cells by k-means on the training points, with
    ``k = max(1, min(K, M // 20))`` for K training and M held-out points (about 20
    held-out points per cell). In each cell, the distances of its generated and
    its held-out points to their nearest training point are compared by the
    Mann-Whitney z-score (:func:`mann_whitney_z`). A cell counts when it holds at
    least 5 held-out points and at least max(5, 2% of all) generated points. C_T
    is the mean of the counted cells' z-scores weighted by their held-out share.

    C_T << 0: generated points sit closer to the training points than held-out
    ones do (copying); C_T near 0: as close as held-out points; C_T > 0: farther.
    NaN when no cell counts.
    """
    k = max(1, min(len(train), len(held_out) // HELD_OUT_PER_CELL))
    centroids = kmeans(train, k, seed=seed)
    held_out_cells = torch.cdist(held_out, centroids).argmin(dim=1)
    generated_cells = torch.cdist(generated, centroids).argmin(dim=1)
    held_out_distances = torch.cdist(held_out, train).min(dim=1).values
    generated_distances = torch.cdist(generated, train).min(dim=1).values
    min_generated = max(MIN_GENERATED_IN_CELL, MIN_GENERATED_SHARE * len(generated))
    weighted, total_share = 0.0, 0.0
    for cell in range(k):
        in_held_out, in_generated = held_out_cells == cell, generated_cells == cell
        if int(in_held_out.sum()) < MIN_HELD_OUT_IN_CELL or int(in_generated.sum()) < min_generated:
            continue
        share = float(in_held_out.sum()) / len(held_out)
        weighted += share * mann_whitney_z(generated_distances[in_generated], held_out_distances[in_held_out])
        total_share += share
    return weighted / total_share if total_share > 0 else math.nan


def is_copying(value: float) -> bool:
    """Whether a C_T value reads as data copying: below :data:`COPYING_THRESHOLD` (NaN never does)."""
    return value < COPYING_THRESHOLD


def intra_cluster_distance(shots: torch.Tensor, generated: torch.Tensor) -> float:
    """Mean over shots of the mean pairwise distance among the generated points nearest that shot.

    Each generated point joins the cluster of its nearest shot (Euclidean); a
    cluster with fewer than two members is skipped. In the spirit of CDC's
    intra-cluster LPIPS (Ojha et al., CVPR 2021), in feature space. NaN when no
    cluster has two members.
    """
    clusters = torch.cdist(generated, shots).argmin(dim=1)
    means = []
    for shot in range(len(shots)):
        members = generated[clusters == shot]
        n = len(members)
        if n >= 2:
            means.append(float(torch.cdist(members, members).sum()) / (n * (n - 1)))  # the diagonal is 0
    return sum(means) / len(means) if means else math.nan


def _precision(evaluation: Evaluation) -> dict[str, float]:
    precision, _ = precision_recall(evaluation.context.evaluator.reference_features, evaluation.features())
    return {"precision": precision}


def _recall(evaluation: Evaluation) -> dict[str, float]:
    _, recall = precision_recall(evaluation.context.evaluator.reference_features, evaluation.features())
    return {"recall": recall}


def _copying(evaluation: Evaluation) -> dict[str, float]:
    context = evaluation.context
    if context.shots is None:
        return {"copying": math.nan}
    return {"copying": data_copying(context.shot_features(), context.evaluator.reference_features,
                                    evaluation.features())}


def _diversity(evaluation: Evaluation) -> dict[str, float]:
    if evaluation.context.shots is None:
        return {"diversity": math.nan}
    return {"diversity": intra_cluster_distance(evaluation.context.shot_features(), evaluation.features())}


PRECISION = Metric(
    name="precision", title="precision", direction="higher", every_evaluation=False,
    columns={"precision": "precision"}, compute=_precision, threshold="0.1", unit="share",
    description="% of the final samples inside the held-out images' k=3 feature manifold (Kynkaanniemi et al.)",
)
RECALL = Metric(
    name="recall", title="recall", direction="higher", every_evaluation=False,
    columns={"recall": "recall"}, compute=_recall, threshold="0.1", unit="share",
    description="% of the held-out images inside the final samples' k=3 feature manifold (Kynkaanniemi et al.)",
)
# Higher is not better past 0 (positive C_T: farther from the shots than real images), so compare has no
# default threshold for C_T; is_copying is the verdict.
COPYING = Metric(
    name="copying", title="C_T", direction="higher", every_evaluation=False,
    columns={"copying": "copying"}, compute=_copying, threshold=None,
    description="data-copying test C_T (Meehan et al.): below -3 the samples copy the training shots, ~0 is ideal",
)
DIVERSITY = Metric(
    name="diversity", title="intra-cluster dist.", direction="higher", every_evaluation=False,
    columns={"diversity": "diversity"}, compute=_diversity, threshold="10%",
    description="mean feature distance among samples nearest the same shot (CDC-style, feature space, not LPIPS)",
)


@hookimpl
def tganbench_register_metrics(register) -> None:
    """Register ``precision``, ``recall``, ``copying`` and ``diversity``."""
    register(PRECISION)
    register(RECALL)
    register(COPYING)
    register(DIVERSITY)
