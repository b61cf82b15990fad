"""Fine-tune an embedding model into an E2Rank reranker: the paper's objective on ``transformers.Trainer``.

Needs the ``train`` extra (``pip install 'e2rank-integrations[train]'``). Importing this package needs nothing;
its names are loaded on first use, so ``e2rank --help`` works without torch.

Example:
    >>> from e2rank_integrations.training import TrainConfig, train  # doctest: +SKIP
    >>> result = train(TrainConfig(model="Alibaba-NLP/E2Rank-0.6B", data="train.jsonl", output="out"))  # doctest: +SKIP
    >>> result.model.rerank("a query", ["a passage", "another"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import lazy_getattr
from .config import PROMPT_FORMATS, TASK_INSTRUCTIONS, TrainConfig

if TYPE_CHECKING:
    from .data import Slate, SlateCollator, load_slates, make_batches
    from .losses import E2RankLoss, e2rank_loss, gather_across_devices, infonce_loss, ranknet_loss
    from .trainer import E2RankTrainer, Objective, TrainResult, evaluate_slates, train

__all__ = [
    "PROMPT_FORMATS",
    "TASK_INSTRUCTIONS",
    "E2RankLoss",
    "E2RankTrainer",
    "Objective",
    "Slate",
    "SlateCollator",
    "TrainConfig",
    "TrainResult",
    "e2rank_loss",
    "evaluate_slates",
    "gather_across_devices",
    "infonce_loss",
    "load_slates",
    "make_batches",
    "ranknet_loss",
    "train",
]

_LAZY = {
    "Slate": "data",
    "SlateCollator": "data",
    "load_slates": "data",
    "make_batches": "data",
    "E2RankLoss": "losses",
    "e2rank_loss": "losses",
    "gather_across_devices": "losses",
    "infonce_loss": "losses",
    "ranknet_loss": "losses",
    "E2RankTrainer": "trainer",
    "Objective": "trainer",
    "TrainResult": "trainer",
    "evaluate_slates": "trainer",
    "train": "trainer",
}  # name -> module, imported on first use (losses and trainer need torch)


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
