"""``python -m e2rank_integrations.training ARGS`` is ``e2rank train ARGS``: the entry point for ``torchrun``.

Example (8 GPUs on one machine)::

    torchrun --nproc-per-node 8 -m e2rank_integrations.training --model BASE --data train.jsonl --output out --bf16
"""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
