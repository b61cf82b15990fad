"""What a model name means, decided once for every entry point (Python, the CLI, the server, Chroma's rebuild).

:meth:`E2RankModel.from_pretrained <e2rank_integrations.E2RankModel.from_pretrained>` calls :func:`resolve_model`
first, so every way of loading a model follows the same rules, in this order:

1. ``"tiny-random"`` is a tiny random-weight checkpoint, generated once into ``$E2RANK_CACHE_DIR`` (default
   ``~/.cache/e2rank-integrations``) and reused. Write ``./tiny-random`` for a directory of that name.
2. An existing directory is loaded from disk; if it lacks the model's files, the error lists the missing ones.
3. A name that *looks like a path* is a directory that does not exist: "no such directory". It looks like a path
   when it is an ``os.PathLike``, or it is not of a hub id's form (``name`` or ``org/name`` of letters, digits,
   ``-``, ``_`` and ``.``): it starts with ``/``, ``./``, ``../`` or ``~``, holds more than one ``/``, a
   backslash or a space, ends with ``/``... It also looks like a path when it is ``dir/name`` and ``dir`` exists
   here: ``models/e2rank`` next to a ``models`` folder means that folder, not a hub organisation.
4. Anything else is a hub id (``Alibaba-NLP/E2Rank-0.6B``). When ``HF_HUB_OFFLINE`` is set, or the hub
   (``$HF_ENDPOINT``, default ``https://huggingface.co``) does not answer within :data:`HUB_TIMEOUT_S` seconds, a
   model already in the local Hugging Face cache loads from there, and any other fails at once with
   :class:`~e2rank_integrations.errors.E2RankHubUnreachableError`, whose message says how to go on.

No torch or framework is imported here.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import E2RankHubUnreachableError, E2RankModelNotFoundError, E2RankTypeError

__all__ = ["HUB_TIMEOUT_S", "TINY_RANDOM", "default_device", "hub_unreachable_reason", "in_hub_cache", "resolve_model"]

TINY_RANDOM = "tiny-random"
"""The model name that stands for a generated tiny checkpoint (``e2rank demo --model tiny-random``)."""

HUB_TIMEOUT_S = 4.0
"""How long the hub may take to answer before it counts as unreachable (DNS lookup included)."""

# A hub repo id: `name` or `namespace/name`, of word characters, `-` and `.`, not starting with `-` or `.`
# (huggingface_hub's own rule, less its ban on `--` and `..`, which only make a name invalid, not a path).
_HUB_ID = re.compile(r"[A-Za-z0-9_][\w.-]{0,95}(/[A-Za-z0-9_][\w.-]{0,95})?")
_OFFLINE_VALUES = ("1", "ON", "YES", "TRUE")  # huggingface_hub's truthy spellings
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def resolve_model(name_or_path: str | os.PathLike[str], hf_kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where to load ``name_or_path`` from, and the ``from_pretrained`` keyword arguments to load it with.

    Args:
        name_or_path: ``"tiny-random"``, a local directory, or a hub id (see the module's rules).
        hf_kwargs: The caller's transformers keyword arguments (``cache_dir``, ``revision``, ``subfolder``,
            ``local_files_only``... are read); not changed.

    Returns:
        The directory or hub id for transformers, and ``hf_kwargs`` with ``local_files_only=True`` added where the
        hub cannot be reached but the local Hugging Face cache has the model.

    Raises:
        E2RankModelNotFoundError: A path that does not exist, is not a directory, or lacks the model's files.
        E2RankHubUnreachableError: A hub id that is not cached while the hub is offline or unreachable.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise E2RankTypeError(f"name_or_path must be a str or a path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    if name == TINY_RANDOM and isinstance(name_or_path, str):
        from .checkpoints import tiny_random_checkpoint  # the generator (387 lines) only when it is asked for

        return str(tiny_random_checkpoint()), hf_kwargs
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        _check_model_files(name, path / hf_kwargs["subfolder"] if hf_kwargs.get("subfolder") else path)
        return str(path), hf_kwargs
    if path.exists():
        raise E2RankModelNotFoundError(f"could not load model {name!r}: it is a file; give the directory it is in")
    if looks_like_path(name_or_path):
        raise E2RankModelNotFoundError(f"could not load model {name!r}: no such directory ({path.absolute()})")
    return name, _hub_kwargs(name, hf_kwargs)


def looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether a name that is not an existing directory means a directory (rule 3 of the module) or a hub id."""
    if not isinstance(name_or_path, str):
        return True
    if not _HUB_ID.fullmatch(name_or_path):
        return True
    head, _, tail = name_or_path.partition("/")
    return bool(tail) and os.path.isdir(head)


def default_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when torch sees a GPU, else ``"cpu"`` (imports torch)."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def in_hub_cache(model_id: str, hf_kwargs: dict[str, Any] | None = None) -> bool:
    """Whether the local Hugging Face cache holds ``model_id`` (its ``config.json``) at the requested revision."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    options = hf_kwargs or {}
    filename = f"{options['subfolder']}/config.json" if options.get("subfolder") else "config.json"
    found = try_to_load_from_cache(
        model_id, filename, cache_dir=options.get("cache_dir"), revision=options.get("revision")
    )
    return isinstance(found, str)


def hub_unreachable_reason(model_id: str, timeout: float | None = None) -> str | None:
    """``None`` when the hub answers a request about ``model_id`` (any HTTP status), else why it does not.

    ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set counts as unreachable without a request. The request goes
    to ``$HF_ENDPOINT`` (default ``https://huggingface.co``) through the usual proxy variables, and the whole check,
    DNS lookup included, ends after ``timeout`` seconds (default :data:`HUB_TIMEOUT_S`).
    """
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # huggingface_hub honours both
        if os.environ.get(variable, "").upper() in _OFFLINE_VALUES:
            return f"{variable} is set, so the hub is not contacted"
    timeout = HUB_TIMEOUT_S if timeout is None else timeout
    url = f"{hub_endpoint()}/api/models/{model_id}"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # it answered: a 401 or 404 is transformers' to explain, not a connection problem
        except (OSError, ValueError) as exc:
            outcome.append(str(getattr(exc, "reason", exc)))

    # A thread, because urllib's timeout does not cover the DNS lookup, which can hang far longer behind a firewall.
    thread = threading.Thread(target=probe, name="e2rank-hub-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT`` or ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _hub_kwargs(model_id: str, hf_kwargs: dict[str, Any]) -> dict[str, Any]:
    if hf_kwargs.get("local_files_only"):
        if in_hub_cache(model_id, hf_kwargs):
            return hf_kwargs
        situation = "local_files_only=True keeps the Hugging Face Hub out"
    else:
        reason = hub_unreachable_reason(model_id)
        if reason is None:
            return hf_kwargs
        if in_hub_cache(model_id, hf_kwargs):
            return {**hf_kwargs, "local_files_only": True}  # no retries against a hub that is not there
        situation = f"the Hugging Face Hub at {hub_endpoint()} is unreachable ({reason})"
    raise E2RankHubUnreachableError(
        f"could not load model {model_id!r}: {situation}, "
        f"the model is not in the local Hugging Face cache, and there is no local directory ./{model_id}. "
        "To go on without the hub:\n"
        "  - give the directory of a local copy: from_pretrained('/path/to/E2Rank-0.6B'), "
        "or `--model /path/to/E2Rank-0.6B` on the command line;\n"
        "  - or use 'tiny-random': a generated random-weight checkpoint (the pipeline is real, the rankings mean "
        "nothing);\n"
        "  - or generate one where you like: e2rank_integrations.checkpoints.make_random_checkpoint('/some/dir')."
    )


def _check_model_files(name: str, directory: Path) -> None:
    """Raise, listing what is missing, unless ``directory`` has a config, weights and a tokenizer."""
    if not directory.is_dir():
        raise E2RankModelNotFoundError(f"could not load model {name!r}: no such directory ({directory})")
    files = {p.name for p in directory.iterdir()}
    missing = []
    if "config.json" not in files:
        missing.append("config.json")
    if not files.intersection(_WEIGHTS) and not any(f.endswith(".safetensors") for f in files):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if "tokenizer.json" not in files and not {"vocab.json", "merges.txt"} <= files:
        missing.append("a tokenizer (tokenizer.json, or vocab.json and merges.txt)")
    if missing:
        raise E2RankModelNotFoundError(
            f"could not load model {name!r}: the directory {directory} is missing {'; '.join(missing)}. "
            "A model directory holds what save_pretrained writes (for E2Rank: config.json, model.safetensors, "
            "tokenizer.json, tokenizer_config.json)."
        )
