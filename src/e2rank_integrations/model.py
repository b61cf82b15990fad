"""E2RankModel: load an E2Rank checkpoint with transformers, embed in length-sorted batches, rerank listwise."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt

from ._optional import check_installed, require
from .cache import CacheSpec, EmbeddingCache, cache_key, make_cache
from .errors import E2RankValueError
from .loading import default_device, resolve_model
from .prompts import QWEN3_CHAT_WRAP, PromptFormat, fit_prompt
from .registry import shared_model
from .scoring import as_embeddings, listwise_rank
from .types import BackendInfo, Embeddings, RankResult
from .validators import check_optional_positive_int, check_positive_int, check_query, check_texts, check_top_n

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL", "E2RankModel", "pad_left", "pool_last_token", "shared_model", "truncate_ids"]

logger = logging.getLogger("e2rank_integrations.model")
_T = TypeVar("_T")

DEFAULT_MODEL = "Alibaba-NLP/E2Rank-0.6B"
_SHARED_HF_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "trust_remote_code", "subfolder")
_TOKENIZER_PROBE = (
    "Instruct: Given a web search query, retrieve passages\nQuery: How do vaccines work?<|endoftext|> "
    "Éléphant naïve café 北京是中国的首都 1234567 <|im_start|>user\n</think>\n\n  \t tabs & spaces"
)
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "rms_norm_eps",
    "hidden_act",
    "vocab_size",
)


class _Fixed(Generic[_T]):
    """A setting the cache fingerprint covers: read-only once the model is built (stored as ``_<name>``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Fixed[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> _T: ...

    def __get__(self, obj: object, owner: type) -> _Fixed[_T] | _T:
        if obj is None:
            return self
        value: _T = getattr(obj, f"_{self.name}")
        return value

    def __set__(self, obj: object, value: _T) -> None:
        raise AttributeError(
            f"E2RankModel.{self.name} is fixed once the model is loaded: the cache fingerprint covers it, so a "
            "new value would be served vectors made under the old one. Load a new model instead "
            f"(E2RankModel.from_pretrained(..., {self.name}=...) for a setting)."
        )


class E2RankModel:
    """An E2Rank embedding model that also reranks, with a cache shared by both.

    Use :meth:`from_pretrained` to load one. Every method returns float32 numpy arrays with L2-normalised rows,
    or :class:`~e2rank_integrations.types.RankResult` lists. The object is safe to share between threads.
    ``close()`` (or a ``with`` block) closes its cache's file.

    What the cache fingerprint covers (``model``, ``tokenizer``, ``max_length``, ``quantize``, ``fingerprint``, and
    ``name_or_path``, which a Chroma collection stores) is read-only: load a new model to change it.

    Example:
        >>> from e2rank_integrations import E2RankModel
        >>> model = E2RankModel.from_pretrained("Alibaba-NLP/E2Rank-0.6B")  # doctest: +SKIP
        >>> docs = ["Beijing is the capital of China.", "Gravity pulls masses together."]
        >>> model.embed_documents(docs).shape  # doctest: +SKIP
        (2, 1024)
        >>> model.rerank("What is the capital of China?", docs)[0].index  # doctest: +SKIP
        0
    """

    model: _Fixed[Any] = _Fixed()
    tokenizer: _Fixed[Any] = _Fixed()
    name_or_path: _Fixed[str] = _Fixed()
    max_length: _Fixed[int] = _Fixed()
    quantize: _Fixed[str | None] = _Fixed()
    fingerprint: _Fixed[str] = _Fixed()

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name_or_path: str = "",
        max_length: int = 8192,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        cache: CacheSpec = None,
        prompts: PromptFormat | None = None,
        quantize: str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self._torch = require("torch", extra="model")
        self._model = model
        self._tokenizer = tokenizer
        self._name_or_path = name_or_path
        self._max_length = check_positive_int(max_length, "max_length")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if max_batch_tokens is None:
            # On a CPU, forward passes of about 1k tokens stay in cache: 1.9x the throughput of 16k-token ones
            # on mixed-length texts (measured, benchmarks/); a GPU wants large batches.
            on_gpu = any(p.device.type != "cpu" for p in model.parameters())
            max_batch_tokens = 16384 if on_gpu else 1024
        self.max_batch_tokens = check_positive_int(max_batch_tokens, "max_batch_tokens")
        self.prompts = prompts or PromptFormat()
        self._quantize = quantize
        self.show_progress = show_progress
        self.cache: EmbeddingCache | None = make_cache(cache)
        self._lock = threading.RLock()  # one forward pass at a time
        # Its own lock, taken by every call into the tokenizer (a fast tokenizer is not safe to call from two
        # threads at once); counting tokens must not wait for another thread's forward pass.
        self._tokenizer_lock = threading.Lock()
        self._last_tokenized: tuple[str, list[int]] | None = None  # see _tokenize
        self._eos_ids: list[int] = self._tokenize([self.prompts.eos])[0]
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_ids[-1]
        with self._tokenizer_lock:
            self._vocab_size = len(tokenizer)
        self._stats_lock = threading.Lock()
        self._stats = {"texts_embedded": 0, "tokens_embedded": 0, "cache_hits": 0, "batches": 0}
        self._embed_seconds = 0.0
        self._fingerprint = self._compute_fingerprint()

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 8192,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        cache: CacheSpec = None,
        prompts: PromptFormat | None = None,
        quantize: str | None = None,
        show_progress: bool | None = None,
        **hf_kwargs: Any,
    ) -> E2RankModel:
        """Load a checkpoint (hub id or local directory) through ``AutoTokenizer``/``AutoModel``.

        Args:
            name_or_path: A hub id such as ``"Alibaba-NLP/E2Rank-0.6B"``, a local directory, or ``"tiny-random"``
                (a generated random-weight checkpoint). See :mod:`e2rank_integrations.loading` for how a name is
                told from a path, and what happens offline.
            device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; default ``cuda`` when available, else ``cpu``.
            dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"``; default bfloat16 on GPU, float32 on CPU.
            max_length: Longest input in tokens; longer texts are cut, keeping ``<|endoftext|>`` last.
            batch_size: Most texts in one forward pass.
            max_batch_tokens: Most tokens (padding included) in one forward pass; default 16384 on a GPU, 1024 on a
                CPU (a text longer than that runs alone).
            cache: ``None`` for the default in-memory LRU, ``False`` for none, a path for a persistent SQLite
                cache, an int for an LRU of that size, or an :class:`~e2rank_integrations.cache.EmbeddingCache`.
            prompts: The query, document and listwise prompt strings (default: the authors' evaluation code).
            quantize: ``"int8"`` for dynamic int8 linear layers on CPU (faster, slightly less exact).
            show_progress: Progress bar on long jobs; default on when stderr is a terminal.
            **hf_kwargs: Passed to ``from_pretrained`` (``revision``, ``token``, ``cache_dir``, ``local_files_only``,
                ``trust_remote_code`` also reach the tokenizer).

        Raises:
            E2RankModelNotFoundError: A path that does not exist or lacks the model's files (the message says which).
            E2RankHubUnreachableError: A hub id, not in the local cache, while the hub cannot be reached.
            ImportError: The ``model`` extra is not installed.
        """
        for module in ("torch", "transformers"):
            check_installed(module, extra="model")
        # Before torch is imported (seconds): a name that cannot be loaded fails at once.
        source, hf_kwargs = resolve_model(name_or_path, hf_kwargs)  # the same rules for every entry point
        torch = require("torch", extra="model")
        transformers = require("transformers", extra="model")
        torch_device = torch.device(default_device(device))
        torch_dtype = _resolve_dtype(torch, dtype, torch_device)
        if quantize not in (None, "int8"):
            raise E2RankValueError(f"quantize must be None or 'int8', got {quantize!r}")
        if quantize and torch_device.type != "cpu":
            raise E2RankValueError("quantize='int8' is for CPU inference; on a GPU use dtype='bfloat16'")
        tokenizer_kwargs = {k: hf_kwargs[k] for k in _SHARED_HF_KWARGS if k in hf_kwargs}
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **tokenizer_kwargs)
        # transformers renamed `torch_dtype` to `dtype` in 4.56 and warns about the old name since.
        dtype_kwarg = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
        hf_kwargs.setdefault("attn_implementation", "sdpa")
        # Nothing to download: no bar (transformers draws one per checkpoint load, a notebook stores it).
        local = Path(source).is_dir() or bool(hf_kwargs.get("local_files_only"))
        with no_progress_bars(transformers) if local else nullcontext():
            model = transformers.AutoModel.from_pretrained(source, **{dtype_kwarg: torch_dtype}, **hf_kwargs)
        model.to(torch_device).eval()
        instance = cls(
            model,
            tokenizer,
            name_or_path=str(name_or_path),
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            cache=cache,
            prompts=prompts,
            quantize=quantize,
            show_progress=show_progress,
        )
        if quantize == "int8":
            # After the fingerprint (which records `quantize`): int8 vectors never mix with float ones in a cache.
            with warnings.catch_warnings():  # torch deprecates its eager int8 API in favour of torchao; it still works
                warnings.simplefilter("ignore")
                instance._model = torch.ao.quantization.quantize_dynamic(
                    model, _int8_layers(torch, model), dtype=torch.qint8
                )
        return instance

    # ------------------------------------------------------------------ properties

    @property
    def dimension(self) -> int:
        """Length of every embedding."""
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> str:
        """The device the weights are on."""
        return str(next(self.model.parameters()).device) if self.quantize is None else "cpu"

    @property
    def dtype(self) -> str:
        """The weights' floating-point type, as a string."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.") if self.quantize is None else "int8"

    @property
    def vocab_size(self) -> int:
        """Token ids this model's tokenizer knows (added tokens included): valid ids are ``[0, vocab_size)``."""
        return self._vocab_size

    def close(self) -> None:
        """Close the cache's file (a SQLite cache's connections). The model stays usable: it reopens on next use."""
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> E2RankModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"E2RankModel({self.name_or_path!r}, device={self.device!r}, dtype={self.dtype!r}, "
            f"max_length={self.max_length}, cache={self.cache!r})"
        )

    # ------------------------------------------------------------------ embedding

    def embed_queries(self, texts: Sequence[str], *, instruction: str | None = None) -> Embeddings:
        r"""Embed retrieval queries, each as ``Instruct: {instruction}\nQuery:{text}<|endoftext|>``.

        Args:
            texts: The queries.
            instruction: The task description; default ``self.prompts.query_instruction``.

        Returns:
            A ``(len(texts), dimension)`` float32 array with L2-normalised rows.
        """
        items = check_texts(texts)
        return self.embed_formatted([self.prompts.query(t, instruction) for t in items])

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Embed documents as stored for retrieval: the text, then ``<|endoftext|>``; no instruction.

        Vectors come from the cache where present; only the misses run through the network.
        """
        items = check_texts(texts)
        return self.embed_formatted([self.prompts.document(t) for t in items])

    def embed_prompt(self, text: str) -> Embeddings:
        """Embed listwise prompt content (see :meth:`listwise_prompt`), wrapped in the chat template.

        Returns:
            One ``(dimension,)`` float32 vector.
        """
        check_query(text, "text")
        vector: Embeddings = self.embed_formatted([self.chat_wrap(text)])[0]
        return vector

    def embed_formatted(self, texts: Sequence[str]) -> Embeddings:
        """Embed exact model inputs (already formatted, nothing added): the cached path under every method."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        keys = [cache_key(self.fingerprint, t) for t in items]
        hits = self._usable(self.cache.get_many(keys)) if self.cache is not None else {}
        todo: dict[str, str] = {}  # key -> text, each distinct text once
        for key, text in zip(keys, items):
            if key not in hits:
                todo.setdefault(key, text)
        computed = dict(zip(todo, self._forward(list(todo.values())))) if todo else {}
        if computed and self.cache is not None:
            self.cache.put_many(computed)
        for row, key in enumerate(keys):
            out[row] = hits[key] if key in hits else computed[key]
        with self._stats_lock:
            self._stats["cache_hits"] += sum(1 for k in keys if k in hits)
        return out

    def model_inputs(self, texts: Sequence[str], *, max_length: int | None = None) -> dict[str, torch.Tensor]:
        """The forward-pass inputs of exact model inputs, as embedding builds them (training reuses this).

        Tokenized without special tokens, cut to ``max_length`` (default ``self.max_length``) keeping
        ``<|endoftext|>`` last, left padded (see :func:`pad_left`); on the CPU.
        """
        limit = self.max_length if max_length is None else check_positive_int(max_length, "max_length")
        ids = [truncate_ids(x, limit, self._eos_ids) for x in self._tokenize(check_texts(texts))]
        return pad_left(ids, self._pad_id)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of exact model inputs, before truncation."""
        return [len(ids) for ids in self._tokenize(check_texts(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids, special tokens and spacing kept (exact for ids this tokenizer produced)."""
        with self._tokenizer_lock:
            text: str = self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return text

    # ------------------------------------------------------------------ reranking

    def chat_wrap(self, content: str) -> str:
        """Wrap listwise content as one user message in the model's chat template.

        The generation prompt is added and thinking disabled; Qwen3's literal format is used if the tokenizer
        has no template.
        """
        if not getattr(self.tokenizer, "chat_template", None):
            return QWEN3_CHAT_WRAP.format(content=content)
        with self._tokenizer_lock:
            text: str = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )
        return text

    def listwise_prompt(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        max_prompt_tokens: int | None = None,
    ) -> str:
        """The exact text embedded to rerank ``documents`` (in the order given) for ``query``.

        The first ``num_prompt_docs`` documents, each cut to ``prompts.doc_max_words`` words, are numbered into
        the listwise template, which is wrapped in the chat template. When the prompt exceeds
        ``max_prompt_tokens`` (default and at most ``max_length``), the prompt documents are cut evenly in
        tokens until it fits.
        """
        query = check_query(query)
        docs = [self.prompts.cut_words(d) for d in check_texts(documents, "documents")[:num_prompt_docs]]
        budget = self.max_length if max_prompt_tokens is None else min(max_prompt_tokens, self.max_length)

        def decode(ids: list[int]) -> str:
            with self._tokenizer_lock:
                text: str = self.tokenizer.decode(ids)
            return text

        return fit_prompt(
            lambda cut: self.chat_wrap(self.prompts.listwise(query, cut, instruction)),
            docs,
            budget,
            self._tokenize,
            decode,
            limits=f"max_length={self.max_length}, max_prompt_tokens={max_prompt_tokens}",
        )

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        doc_embeddings: npt.ArrayLike | None = None,
        instruction: str | None = None,
        num_prompt_docs: int = 20,
        passes: int = 1,
        max_prompt_tokens: int | None = None,
    ) -> list[RankResult]:
        """Rerank ``documents`` (in first-stage order) for ``query`` with one listwise prompt embedding.

        Every candidate is scored by cosine similarity to the prompt embedding, not only those in the prompt.

        Args:
            query: The search query (non-empty).
            documents: Candidates in the order the first stage returned them.
            top_n: Keep the best ``top_n`` (default all; more than the list returns all).
            doc_embeddings: The candidates' stored embeddings (one row each), e.g. from a vector store;
                when absent they come from the cache or are embedded.
            instruction: Task description opening the listwise prompt.
            num_prompt_docs: How many leading candidates go into the prompt.
            passes: 2 reranks again with the first pass's order in the prompt.
            max_prompt_tokens: Token budget for the prompt; prompt documents are cut evenly to fit.

        Returns:
            :class:`RankResult` items sorted by score, best first; ties keep first-stage order.
        """
        query = check_query(query)
        docs = check_texts(documents, "documents")
        top_n = check_top_n(top_n)
        num_prompt_docs = check_positive_int(num_prompt_docs, "num_prompt_docs")
        passes = check_positive_int(passes, "passes")
        max_prompt_tokens = check_optional_positive_int(max_prompt_tokens, "max_prompt_tokens")
        if not docs:
            return []
        if doc_embeddings is not None:
            vectors = as_embeddings(doc_embeddings, len(docs), dim=self.dimension)
        else:
            vectors = self.embed_documents(docs)

        def prompt_vector(order: Sequence[int]) -> Embeddings:
            prompt = self.listwise_prompt(
                query,
                [docs[i] for i in order[:num_prompt_docs]],
                instruction=instruction,
                num_prompt_docs=num_prompt_docs,
                max_prompt_tokens=max_prompt_tokens,
            )
            vector: Embeddings = self.embed_formatted([prompt])[0]
            return vector

        return listwise_rank(prompt_vector, vectors, passes=passes, top_n=top_n)

    # ------------------------------------------------------------------ counters

    def stats(self) -> dict[str, Any]:
        """Counters since load.

        ``texts_embedded`` (run through the network), ``tokens_embedded``, ``cache_hits``, ``batches``,
        ``embed_seconds`` and ``cache_entries``.
        """
        with self._stats_lock:
            out: dict[str, Any] = dict(self._stats)
            out["embed_seconds"] = round(self._embed_seconds, 6)
        out["cache_entries"] = len(self.cache) if self.cache is not None else 0
        return out

    def describe(self) -> BackendInfo:
        """What this model serves: its ``name_or_path``, fingerprint, dimension, prompts and ``max_length``."""
        return BackendInfo(
            model=self.name_or_path,
            fingerprint=self.fingerprint,
            dimension=self.dimension,
            prompts=self.prompts,
            max_length=self.max_length,
        )

    def reset_stats(self) -> None:
        """Set every counter back to zero (the cache keeps its entries)."""
        with self._stats_lock:
            self._stats = dict.fromkeys(self._stats, 0)
            self._embed_seconds = 0.0

    # ------------------------------------------------------------------ internals

    def _usable(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """The cached vectors this model could have made; any other is a miss, so it is recomputed and rewritten.

        A row of another length (a single float32 would broadcast into a whole row) or not of unit length (garbage
        bytes, NaN) would otherwise be served as an embedding.
        """
        good = {}
        for key, vector in found.items():
            if (
                isinstance(vector, np.ndarray)
                and vector.shape == (self.dimension,)
                and vector.dtype.kind == "f"
                and abs(float(vector @ vector) - 1.0) < 1e-3
            ):
                good[key] = vector
        if len(good) < len(found):
            logger.warning(
                "%d cached embedding(s) in %r had the wrong length or norm: recomputed and rewritten",
                len(found) - len(good),
                self.cache,
            )
        return good

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        # A listwise prompt is measured, then embedded: one memo saves its second tokenization (12 ms of 47 on an H200).
        last = self._last_tokenized
        if len(texts) == 1 and last is not None and last[0] == texts[0]:
            return [last[1]]
        with self._tokenizer_lock:  # fast tokenizers are not safe to call from two threads at once
            ids: list[list[int]] = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        if len(texts) == 1:
            self._last_tokenized = (texts[0], ids[0])
        return ids

    def _truncate(self, ids: list[int]) -> list[int]:
        """Cut to ``max_length`` tokens, keeping a trailing end-of-text token last."""
        return truncate_ids(ids, self.max_length, self._eos_ids)

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped longest first, each group under ``batch_size`` texts and ``max_batch_tokens``."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            if batches:
                batch = batches[-1]
                padded = (len(batch) + 1) * lengths[batch[0]]
                if len(batch) < self.batch_size and padded <= self.max_batch_tokens:
                    batch.append(i)
                    continue
            batches.append([i])
        return batches

    def _forward(self, texts: Sequence[str]) -> Embeddings:
        torch = self._torch
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self._lock:
            start = time.perf_counter()
            ids = [self._truncate(x) for x in self._tokenize(texts)]
            batches = self._batches([len(x) for x in ids])
            show = self.show_progress if self.show_progress is not None else (len(texts) > 256 and sys.stderr.isatty())
            device = self.device
            for batch in _progress(batches, show, total_texts=len(texts)):
                inputs = pad_left([ids[i] for i in batch], self._pad_id)
                with torch.inference_mode():
                    vectors = pool_last_token(self.model, {k: v.to(device) for k, v in inputs.items()})
                out[batch] = vectors.cpu().numpy()
            elapsed = time.perf_counter() - start
        with self._stats_lock:
            self._stats["texts_embedded"] += len(texts)
            self._stats["tokens_embedded"] += sum(len(x) for x in ids)
            self._stats["batches"] += len(batches)
            self._embed_seconds += elapsed
        return out

    def _compute_fingerprint(self) -> str:
        """Identify weights and encoding settings: equal fingerprints give equal vectors for equal texts."""
        torch = self._torch
        digest = hashlib.sha256()
        config = self.model.config
        described = {k: getattr(config, k, None) for k in _FINGERPRINT_CONFIG_KEYS}
        described["rope_theta"] = _rope_theta(config)
        settings = {
            "config": described,
            "max_length": self.max_length,
            "dtype": self.dtype,
            "quantize": self.quantize,
            "pooling": "last-token, L2-normalised, positions from 0",
            "tokenizer_size": self._vocab_size,
        }
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        # The tokenizer enters through the ids of a probe text (its serialisation differs between versions).
        digest.update(json.dumps(self._tokenize([_TOKENIZER_PROBE])[0]).encode())
        with torch.inference_mode():
            for name, tensor in sorted(self.model.state_dict().items()):
                flat = tensor.detach().reshape(-1)
                sample = flat[:: max(1, flat.numel() // 2048)][:2048]  # a strided sample identifies a checkpoint
                digest.update(name.encode())
                digest.update(sample.float().cpu().numpy().tobytes())
        return digest.hexdigest()[:32]


def truncate_ids(ids: list[int], max_length: int, eos_ids: Sequence[int]) -> list[int]:
    """Cut token ids to ``max_length``, keeping a trailing ``eos_ids`` (the ``<|endoftext|>`` token) last."""
    if len(ids) <= max_length:
        return ids
    eos = list(eos_ids)
    keep = eos if len(eos) < max_length and ids[-len(eos) :] == eos else []
    return ids[: max_length - len(keep)] + keep


def pad_left(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for token-id lists, left padded so that the last position holds every text's last token.

    Returns ``input_ids`` and ``position_ids`` (counted from each text's first real token, as if it were embedded
    alone), plus ``attention_mask`` only when some row is padded. Inference and training share this encoding.
    """
    torch = require("torch", extra="model")
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, row_ids in enumerate(ids):
        n = len(row_ids)
        input_ids[row, width - n :] = torch.tensor(row_ids, dtype=torch.long)
        mask[row, width - n :] = 1
    inputs = {"input_ids": input_ids, "position_ids": (mask.cumsum(dim=1) - 1).clamp(min=0)}
    if bool((mask == 0).any()):
        inputs["attention_mask"] = mask
    return inputs


def pool_last_token(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Embeddings of :func:`pad_left` inputs: the last position's hidden state, float32, L2-normalised."""
    functional = require("torch.nn.functional", extra="model")
    hidden = model(**inputs, use_cache=False).last_hidden_state[:, -1]
    vectors: torch.Tensor = functional.normalize(hidden.float(), p=2, dim=-1)
    return vectors


@contextmanager
def no_progress_bars(transformers: Any) -> Iterator[None]:
    """No transformers (or Hugging Face Hub) progress bars within: loading or saving weights that are local."""
    hf_logging = transformers.utils.logging
    if not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _resolve_dtype(torch: Any, dtype: Any, device: Any) -> Any:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
    }
    if isinstance(dtype, str) and dtype.lower() in names:
        return names[dtype.lower()]
    raise E2RankValueError(f"dtype must be one of {', '.join(sorted(names))} or a torch.dtype, got {dtype!r}")


def _int8_layers(torch: Any, model: Any) -> dict[str, Any]:
    """Which linear layers ``quantize="int8"`` converts: all but the attention output projections, per channel.

    The attention output quantizes worst: keeping ``o_proj`` in float32 lifts the lowest embedding cosine to the
    float32 model from 0.982 to 0.993 (a random 0.6B-shaped checkpoint, mixed texts) for a few percent of speed.
    """
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return {
        name: qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("o_proj")
    }


def _rope_theta(config: Any) -> Any:
    """RoPE base from either config layout (top-level in transformers 4, nested in 5)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return params["rope_theta"]
    return getattr(config, "rope_theta", None)


def _progress(batches: list[list[int]], show: bool, total_texts: int) -> Any:
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"Embedding {total_texts} texts", unit="batch", file=sys.stderr)
