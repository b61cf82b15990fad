"""The strings E2Rank is run on: query, document and listwise prompt formats. Pure Python, no torch.

The defaults reproduce the authors' evaluation code (``src/eval.py`` of Alibaba-NLP/E2Rank), which produced the
published numbers. Their README and training code spell the listwise prompt slightly differently; see
:data:`README_LISTWISE_TEMPLATE` and :data:`TRAINING_LISTWISE_TEMPLATE` to use one of those instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import E2RankValueError
from .validators import check_query, check_texts, check_unicode  # also re-exported here

__all__ = [
    "AGENT_MAX_PROMPT_TOKENS",
    "AGENT_NUM_PROMPT_DOCS",
    "DEFAULT_QUERY_INSTRUCTION",
    "DEFAULT_RERANK_INSTRUCTION",
    "EOS",
    "LISTWISE_TEMPLATE",
    "QUERY_TEMPLATE",
    "QWEN3_CHAT_WRAP",
    "README_LISTWISE_TEMPLATE",
    "TRAINING_LISTWISE_TEMPLATE",
    "PromptFormat",
    "check_query",
    "check_texts",
    "check_unicode",
    "fair_caps",
    "fit_prompt",
    "titled",
]

EOS = "<|endoftext|>"
DEFAULT_QUERY_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
DEFAULT_RERANK_INSTRUCTION = (
    "Given a web search query and some relevant documents, rerank the documents that answer the query:"
)
QUERY_TEMPLATE = "Instruct: {instruction}\nQuery:{query}"
# The evaluation code's spelling (the default): a newline before "Search Query: ", with a space after the colon.
LISTWISE_TEMPLATE = "{instruction}\nDocuments:\n{documents}\nSearch Query: {query}"
# The authors' README: no newline before "Search Query:" and no space after it.
README_LISTWISE_TEMPLATE = "{instruction}\nDocuments:\n{documents}Search Query:{query}"
# The training data: "Query: " instead of "Search Query: " (and the instruction without its trailing colon,
# which the template adds), plus an <|endoftext|> inside the chat message (set ``prompt_suffix=EOS``).
TRAINING_LISTWISE_TEMPLATE = "{instruction}\nDocuments:\n{documents}\nQuery: {query}"
# Qwen3's chat template applied to one user message with add_generation_prompt=True, enable_thinking=False.
# Used where no tokenizer is at hand (the HTTP client building prompts for an OpenAI-compatible server).
# What an agent tool (LangChain, LlamaIndex, `e2rank mcp`) reranks with unless told otherwise: the prompt is the text
# a call embeds, and at the paper's 20 documents a CPU call takes a minute. Chosen by benchmarks/agent_tool.py.
AGENT_NUM_PROMPT_DOCS = 5
AGENT_MAX_PROMPT_TOKENS = 512
QWEN3_CHAT_WRAP = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class PromptFormat:
    """Every string around the user's text. The defaults are the authors' evaluation settings.

    Attributes:
        query_instruction: Task description for retrieval queries.
        query_template: Retrieval query format, with ``{instruction}`` and ``{query}``.
        rerank_instruction: Task description that opens the listwise prompt.
        listwise_template: Listwise prompt content, with ``{instruction}``, ``{documents}`` and ``{query}``.
        doc_max_words: Each prompt document is cut to this many whitespace-separated words.
        eos: Appended to every query and document (not to the listwise prompt).
        prompt_suffix: Appended to the listwise content inside the chat message (empty in the evaluation code).

    Example:
        >>> fmt = PromptFormat()
        >>> fmt.document("Paris is the capital of France.")
        'Paris is the capital of France.<|endoftext|>'
        >>> print(fmt.listwise("capital of France?", ["Paris is the capital.", "Lyon is big."]))
        Given a web search query and some relevant documents, rerank the documents that answer the query:
        Documents:
        [1] Paris is the capital.
        [2] Lyon is big.
        Search Query: capital of France?
    """

    query_instruction: str = DEFAULT_QUERY_INSTRUCTION
    query_template: str = QUERY_TEMPLATE
    rerank_instruction: str = DEFAULT_RERANK_INSTRUCTION
    listwise_template: str = LISTWISE_TEMPLATE
    doc_max_words: int = 1024
    eos: str = EOS
    prompt_suffix: str = ""

    def __post_init__(self) -> None:
        for name, fields in (
            ("query_template", ("instruction", "query")),
            ("listwise_template", ("instruction", "documents", "query")),
        ):
            template = getattr(self, name)
            missing = [f for f in fields if "{" + f + "}" not in template]
            if missing:
                raise E2RankValueError(f"PromptFormat.{name} must contain {', '.join('{' + f + '}' for f in missing)}")
        if self.doc_max_words < 1:
            raise E2RankValueError(f"PromptFormat.doc_max_words must be >= 1, got {self.doc_max_words}")

    def query(self, text: str, instruction: str | None = None) -> str:
        """Format one retrieval query (instruction, query, end-of-text token)."""
        instruction = self.query_instruction if instruction is None else instruction
        return self.query_template.format(instruction=instruction, query=text) + self.eos

    def document(self, text: str) -> str:
        """Format one document: the text as it is, then the end-of-text token."""
        return text + self.eos

    def cut_words(self, text: str) -> str:
        """Cut a prompt document to its first ``doc_max_words`` whitespace-separated words."""
        return " ".join(text.split()[: self.doc_max_words])

    def listwise(self, query: str, prompt_docs: Sequence[str], instruction: str | None = None) -> str:
        """The listwise prompt content (before the chat template) for documents already chosen and cut."""
        instruction = self.rerank_instruction if instruction is None else instruction
        numbered = "\n".join(f"[{i}] {doc}" for i, doc in enumerate(prompt_docs, start=1))
        content = self.listwise_template.format(instruction=instruction, documents=numbered, query=query)
        return content + self.prompt_suffix

    def to_dict(self) -> dict[str, Any]:
        """The format as JSON values (for ``/info`` and persisted configurations)."""
        return dict(self.__dict__)


def titled(title: str | None, text: str) -> str:
    """A corpus record's text as embedded: ``"title text"`` (BEIR's convention), or the text alone without a title.

    >>> titled("Beijing", "The capital of China."), titled("", "No title.")
    ('Beijing The capital of China.', 'No title.')
    """
    title = (title or "").strip()
    return f"{title} {text}".strip() if title else text


def fair_caps(lengths: Sequence[int], budget: int) -> list[int]:
    """Cut lengths evenly to fit a total budget: short items keep their length, long ones share the rest.

    Returns per-item caps ``c_i <= lengths[i]`` with ``sum(c_i) <= budget``; items longer than the common cap
    are all cut to that cap (water-filling), so no document loses more than it must.

    >>> fair_caps([10, 100, 40], 90)
    [10, 40, 40]
    """
    if budget < 0:
        raise E2RankValueError(f"budget must be >= 0, got {budget}")
    caps = list(lengths)
    if sum(caps) <= budget:
        return caps
    remaining, open_items = budget, len(caps)
    for length in sorted(caps):
        share = remaining // open_items
        if length > share:
            cap = share
            return [min(n, cap) for n in caps]
        remaining -= length
        open_items -= 1
    return caps  # pragma: no cover - unreachable: the sum exceeded the budget


def fit_prompt(
    build: Callable[[list[str]], str],
    docs: Sequence[str],
    budget: int,
    encode: Callable[[list[str]], list[list[int]]],
    decode: Callable[[list[int]], str],
    *,
    limits: str = "",
) -> str:
    """``build(docs)``, with the documents cut evenly in tokens until the prompt is at most ``budget`` tokens.

    Args:
        build: Makes the whole prompt (template, query, chat wrap) from the prompt documents.
        docs: The prompt documents.
        budget: The most tokens the prompt may have.
        encode: Token ids of texts (no special tokens added).
        decode: Text of token ids.
        limits: Where the budget came from, for the error message (e.g. ``"max_prompt_tokens=512"``).

    Raises:
        E2RankValueError: The prompt does not fit even with empty documents.
    """
    docs = list(docs)
    prompt = build(docs)
    length = len(encode([prompt])[0])
    if length <= budget:
        return prompt
    doc_ids = encode(docs) if docs else []
    overhead = length - sum(len(ids) for ids in doc_ids)
    target = budget - overhead
    while target > 0:  # token counts are not exactly additive at the cut points: shrink until it fits
        caps = fair_caps([len(ids) for ids in doc_ids], target)
        prompt = build([decode(ids[:cap]) for ids, cap in zip(doc_ids, caps)])
        excess = len(encode([prompt])[0]) - budget
        if excess <= 0:
            return prompt
        target -= max(excess, 1)
    raise E2RankValueError(
        f"the listwise prompt needs {overhead} tokens without its documents, more than the budget of {budget} "
        f"tokens{f' ({limits})' if limits else ''}; shorten the query or the instruction"
    )
