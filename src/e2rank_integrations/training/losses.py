"""The E2Rank training objective: InfoNCE on query/passage cosines plus RankNet on prompt/passage cosines.

Written from the formulas of the paper and of the authors' ``src/modeling.py`` (Alibaba-NLP/E2Rank), not copied:

- embedding loss: cross-entropy over ``cos(q_i, d_j) / temperature`` for every passage ``j`` of the batch, the
  target being query ``i``'s teacher-best passage. The passages are laid out as the authors lay them out: slate
  after slate, each slate reordered best first, so query ``i``'s positive sits at row ``i * slate``;
- ranking loss: RankNet, binary cross-entropy with target 1 on ``s_a - s_b`` for every pair where the teacher puts
  ``a`` before ``b``, ``s = scale * cos(prompt, passage)``, averaged over all such pairs of the batch;
- total: ``embedding_weight * embedding + ranknet_weight * ranking`` (the authors train with 1.0 and 2.0).

Every function takes tensors and returns tensors; nothing here touches a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .._optional import require
from ..errors import E2RankValueError

require("torch", extra="train")

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["E2RankLoss", "e2rank_loss", "gather_across_devices", "infonce_loss", "ranknet_loss"]


class E2RankLoss(NamedTuple):
    """The weighted total (what is minimised) and its two unweighted parts."""

    total: Tensor
    embedding: Tensor
    ranking: Tensor


def infonce_loss(q: Tensor, d: Tensor, temperature: float = 0.03) -> Tensor:
    """InfoNCE of queries against every passage in the batch, the first passage of each query's slate the positive.

    Args:
        q: ``(batch, dim)`` L2-normalised query embeddings.
        d: ``(batch * slate, dim)`` L2-normalised passage embeddings, slate after slate, each slate's positive first
            (query ``i``'s positive is row ``i * slate``); every other row is a negative for every query.
        temperature: Divides the cosine similarities (0.03 in the paper).

    Returns:
        The mean cross-entropy over queries (a scalar).

    Example:
        >>> import torch
        >>> q = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
        >>> d = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
        >>> infonce_loss(q, d).shape
        torch.Size([])
    """
    if q.dim() != 2 or d.dim() != 2 or q.size(1) != d.size(1):
        raise E2RankValueError(
            f"`q` must be (batch, dim) and `d` (batch * slate, dim); got {tuple(q.shape)}, {tuple(d.shape)}"
        )
    if q.size(0) == 0 or d.size(0) % q.size(0) != 0:
        raise E2RankValueError(f"`d` has {d.size(0)} rows, not a multiple of the {q.size(0)} queries")
    slate = d.size(0) // q.size(0)
    logits = q @ d.T / temperature
    target = torch.arange(q.size(0), device=q.device) * slate
    loss: Tensor = F.cross_entropy(logits, target)
    return loss


def ranknet_loss(scores: Tensor, ranking: Tensor, grades: Tensor | None = None) -> Tensor:
    """RankNet over every teacher-ordered pair of each slate, averaged over all pairs of the batch.

    Args:
        scores: ``(batch, slate)`` logits (the scale already applied), one per passage in slate order.
        ranking: ``(batch, slate)`` integer indices into the slate, best first (a permutation per row).
        grades: ``(batch, slate)`` the teacher's grades in slate order, consistent with ``ranking``; pairs of equal
            grades are left out (masked, as the authors' code does). ``None``: every pair is ordered.

    Returns:
        ``mean(BCEWithLogits(s[ranking[a]] - s[ranking[b]], 1))`` over ``a < b`` (of different grades), a scalar;
        0 when no pair of the batch has different grades.

    Example:
        >>> import torch
        >>> right = ranknet_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[0, 1, 2]]))
        >>> wrong = ranknet_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[2, 1, 0]]))
        >>> bool(right < wrong)
        True
    """
    if scores.dim() != 2 or scores.shape != ranking.shape:
        raise E2RankValueError(
            f"`scores` and `ranking` must both be (batch, slate); got {tuple(scores.shape)}, {tuple(ranking.shape)}"
        )
    if scores.size(1) < 2:
        raise E2RankValueError("a slate needs at least 2 passages to have a pair to rank")
    ordered = scores.gather(1, ranking)  # best first
    diffs = ordered.unsqueeze(2) - ordered.unsqueeze(1)  # [b, a, c] = s_a - s_c in teacher positions
    size = scores.size(1)
    above = torch.ones(size, size, dtype=torch.bool, device=scores.device).triu(diagonal=1)
    if grades is None:
        pairs = diffs[:, above]  # a before c in the teacher's order
        loss: Tensor = F.binary_cross_entropy_with_logits(pairs, torch.ones_like(pairs))
        return loss
    ordered_grades = grades.gather(1, ranking)
    differ = (ordered_grades.unsqueeze(2) > ordered_grades.unsqueeze(1)) & above  # a graded above c
    per_pair = F.binary_cross_entropy_with_logits(diffs, torch.ones_like(diffs), reduction="none")
    masked: Tensor = (per_pair * differ).sum() / differ.sum().clamp(min=1)
    return masked


def e2rank_loss(
    q: Tensor,
    d: Tensor,
    prompt: Tensor,
    ranking: Tensor,
    *,
    temperature: float = 0.03,
    ranknet_scale: float = 10.0,
    embedding_weight: float = 1.0,
    ranknet_weight: float = 2.0,
    gather: Callable[[Tensor], Tensor] | None = None,
    embedding_grad_scale: float = 1.0,
    grades: Tensor | None = None,
) -> E2RankLoss:
    """The joint objective on one batch of slates.

    Args:
        q: ``(batch, dim)`` L2-normalised query embeddings.
        d: ``(batch * slate, dim)`` L2-normalised passage embeddings, slate after slate, each slate in data order.
        prompt: ``(batch, dim)`` L2-normalised embeddings of each slate's listwise prompt.
        ranking: ``(batch, slate)`` teacher order: indices into each slate, best first.
        temperature: InfoNCE temperature.
        ranknet_scale: Multiplies ``cos(prompt, passage)`` before RankNet.
        embedding_weight: Weight of the InfoNCE term.
        ranknet_weight: Weight of the RankNet term.
        gather: Applied to the queries and to the best-first passages before InfoNCE, e.g.
            :func:`gather_across_devices` to use every device's passages as negatives.
        embedding_grad_scale: Multiplies the gradient of the InfoNCE term, not its value. With ``gather``, pass the
            number of processes: each process back-propagates only through its own rows and data parallelism
            averages the gradients, so the gathered batch's gradient would otherwise be divided by it.

        grades: ``(batch, slate)`` the teacher's grades in slate order (see :func:`ranknet_loss`); ``ranking``
            must sort them best first, so that InfoNCE's positive is a top-graded passage.

    Returns:
        An :class:`E2RankLoss` (total, embedding, ranking).
    """
    batch, slate = ranking.shape
    slates = d.reshape(batch, slate, -1)
    best_first = slates.gather(1, ranking.unsqueeze(-1).expand(-1, -1, slates.size(-1))).reshape(batch * slate, -1)
    if gather is not None:
        q, best_first = gather(q), gather(best_first)
    embedding = infonce_loss(q, best_first, temperature)
    if embedding_grad_scale != 1:
        embedding = embedding * embedding_grad_scale - embedding.detach() * (embedding_grad_scale - 1)
    scores = ranknet_scale * torch.einsum("bd,bsd->bs", prompt, slates)
    ranking_term = ranknet_loss(scores, ranking, grades)
    return E2RankLoss(embedding_weight * embedding + ranknet_weight * ranking_term, embedding, ranking_term)


def gather_across_devices(t: Tensor) -> Tensor:
    """Concatenate ``t`` from every process, in rank order; this process's rows keep their gradient.

    The identity outside distributed training. Every process must pass the same shape. ``all_gather`` does not
    carry gradients, so the local rows are put back in place: each process back-propagates through its own rows
    (the standard way, and the authors').
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    t = t.contiguous()
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    parts[dist.get_rank()] = t
    gathered: Tensor = torch.cat(parts, dim=0)
    return gathered
