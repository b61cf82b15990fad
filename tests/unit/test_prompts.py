import pytest

from e2rank_integrations.prompts import (
    DEFAULT_QUERY_INSTRUCTION,
    EOS,
    QWEN3_CHAT_WRAP,
    README_LISTWISE_TEMPLATE,
    PromptFormat,
    fair_caps,
    fit_prompt,
)
from e2rank_integrations.validators import check_query, check_texts


def test_document_and_query_formats_match_the_reference():
    fmt = PromptFormat()
    assert fmt.document("Beijing.") == "Beijing.<|endoftext|>"
    assert fmt.query("capital?") == f"Instruct: {DEFAULT_QUERY_INSTRUCTION}\nQuery:capital?<|endoftext|>"
    assert fmt.query("q", instruction="Find code") == "Instruct: Find code\nQuery:q<|endoftext|>"


def test_listwise_content_is_the_evaluation_codes_spelling():
    content = PromptFormat().listwise("what?", ["first doc", "second doc"])
    assert content == (
        "Given a web search query and some relevant documents, rerank the documents that answer the query:\n"
        "Documents:\n[1] first doc\n[2] second doc\nSearch Query: what?"
    )


def test_other_spellings_and_instruction_override():
    fmt = PromptFormat(listwise_template=README_LISTWISE_TEMPLATE)
    assert fmt.listwise("q", ["a"], instruction="Rank:") == "Rank:\nDocuments:\n[1] aSearch Query:q"
    assert PromptFormat(prompt_suffix=EOS).listwise("q", []).endswith("Search Query: q<|endoftext|>")


def test_braces_in_user_text_are_kept_verbatim():
    fmt = PromptFormat()
    assert fmt.query("{query} {0}").endswith("Query:{query} {0}<|endoftext|>")
    assert "[1] {documents}" in fmt.listwise("{x}", ["{documents}"])
    assert QWEN3_CHAT_WRAP.format(content="{a}") == (
        "<|im_start|>user\n{a}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_cut_words_keeps_the_first_words_and_collapses_whitespace():
    fmt = PromptFormat(doc_max_words=3)
    assert fmt.cut_words("one  two\nthree four five") == "one two three"
    assert PromptFormat().cut_words(" ".join(["w"] * 2000)).count("w") == 1024


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_template": "no placeholders"}, "{instruction}"),
        ({"listwise_template": "{instruction} {query}"}, "{documents}"),
        ({"doc_max_words": 0}, "doc_max_words"),
    ],
)
def test_bad_prompt_format_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptFormat(**kwargs)


def test_check_query():
    assert check_query("q") == "q"
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        check_query("   ")
    with pytest.raises(TypeError, match="query must be a string, got int"):
        check_query(3)


def test_check_texts_names_the_bad_item():
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts([]) == []
    with pytest.raises(TypeError, match=r"documents\[1\] must be a string, got NoneType"):
        check_texts(["a", None], "documents")
    with pytest.raises(TypeError, match="not a single str"):
        check_texts("abc")
    with pytest.raises(TypeError, match="got int"):
        check_texts(5)


@pytest.mark.parametrize(
    ("lengths", "budget", "expected"),
    [
        ([10, 100, 40], 90, [10, 40, 40]),
        ([10, 20], 100, [10, 20]),
        ([50, 50, 50], 90, [30, 30, 30]),
        ([5, 5, 100], 12, [4, 4, 4]),
        ([], 10, []),
        ([7, 9], 0, [0, 0]),
    ],
)
def test_fair_caps(lengths, budget, expected):
    caps = fair_caps(lengths, budget)
    assert caps == expected
    assert sum(caps) <= max(budget, sum(lengths)) and all(c <= n for c, n in zip(caps, lengths))


def test_fair_caps_rejects_negative_budget():
    with pytest.raises(ValueError, match="budget"):
        fair_caps([1], -1)


def chars(texts: list[str]) -> list[list[int]]:
    """A tokenizer of one token per character: the budget arithmetic is then easy to check."""
    return [[ord(c) for c in text] for text in texts]


def test_fit_prompt_cuts_the_documents_evenly_to_the_budget():
    def build(docs: list[str]) -> str:
        return "Q:" + "|".join(docs)

    def decode(ids: list[int]) -> str:
        return "".join(map(chr, ids))

    docs = ["a" * 10, "b" * 100, "c" * 40]
    assert fit_prompt(build, docs, 1000, chars, decode) == build(docs)  # fits: unchanged
    fitted = fit_prompt(build, docs, 2 + 2 + 90, chars, decode)
    assert fitted == build(["a" * 10, "b" * 40, "c" * 40]) and len(fitted) == 94
    with pytest.raises(
        ValueError, match=r"needs 4 tokens without its documents.*budget of 3 tokens \(max_prompt_tokens=3\)"
    ):
        fit_prompt(build, docs, 3, chars, decode, limits="max_prompt_tokens=3")
