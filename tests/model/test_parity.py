"""Parity with the reference computation (DESIGN.md Section 2), re-implemented here with plain transformers
calls, one text at a time, sharing no code with the package."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query"
RERANK_TASK = "Given a web search query and some relevant documents, rerank the documents that answer the query:"

DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to physical objects.",
    "Shanghai is the largest city in China and a global financial hub on the Yangtze delta.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Beijing hosted the 2008 Summer Olympics and the 2022 Winter Olympics.",
    "  Leading and trailing   whitespace,\nnewlines\tand tabs are part of a document.  ",
    "The Great Wall runs across northern China; its best-kept parts are near Beijing.",
    "短文本",
]
QUERY = "What is the capital of China?"


@pytest.fixture(scope="module")
def reference(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModel.from_pretrained(tiny_path).eval()

    def embed(text: str) -> np.ndarray:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**ids).last_hidden_state[0, -1]
        return F.normalize(hidden.float(), dim=-1).numpy()

    def prompt(query: str, docs: list[str], k: int) -> str:
        prompt_docs = [" ".join(d.split()[:1024]) for d in docs[:k]]
        content = (
            f"{RERANK_TASK}\nDocuments:\n"
            + "\n".join(f"[{i}] {d}" for i, d in enumerate(prompt_docs, start=1))
            + f"\nSearch Query: {query}"
        )
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    return embed, prompt


def test_documents_match_reference(tiny_model, reference):
    embed, _ = reference
    expected = np.stack([embed(d + "<|endoftext|>") for d in DOCS])
    np.testing.assert_allclose(tiny_model.embed_documents(DOCS), expected, atol=1e-5)


def test_queries_match_reference(tiny_model, reference):
    embed, _ = reference
    queries = [QUERY, "Explain gravity", "x"]
    expected = np.stack([embed(f"Instruct: {QUERY_TASK}\nQuery:{q}<|endoftext|>") for q in queries])
    np.testing.assert_allclose(tiny_model.embed_queries(queries), expected, atol=1e-5)


def test_the_prompt_is_the_qwen3_chat_format(tiny_model, reference):
    _, prompt = reference
    text = prompt(QUERY, DOCS, 20)
    assert text.startswith("<|im_start|>user\n" + RERANK_TASK + "\nDocuments:\n[1] The capital of China")
    assert text.endswith(f"\nSearch Query: {QUERY}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tiny_model.listwise_prompt(QUERY, DOCS) == text


@pytest.mark.parametrize("num_prompt_docs", [1, 3, 20])
def test_rerank_matches_reference(tiny_model, reference, num_prompt_docs):
    embed, prompt = reference
    doc_vectors = np.stack([embed(d + "<|endoftext|>") for d in DOCS])
    prompt_vector = embed(prompt(QUERY, DOCS, num_prompt_docs))
    expected = doc_vectors @ prompt_vector
    results = tiny_model.rerank(QUERY, DOCS, num_prompt_docs=num_prompt_docs)
    assert len(results) == len(DOCS)
    got = np.array([r.score for r in sorted(results, key=lambda r: r.index)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r.index for r in results] == list(np.argsort(-expected, kind="stable"))
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_rerank_with_stored_embeddings_equals_rerank(tiny_model):
    stored = tiny_model.embed_documents(DOCS)
    assert tiny_model.rerank(QUERY, DOCS, doc_embeddings=stored) == tiny_model.rerank(QUERY, DOCS)
    # unnormalised vectors from a store score the same (cosine)
    scaled = tiny_model.rerank(QUERY, DOCS, doc_embeddings=stored * 3.0)
    np.testing.assert_allclose([r.score for r in scaled], [r.score for r in tiny_model.rerank(QUERY, DOCS)], atol=1e-6)


def test_second_pass_uses_first_pass_order(tiny_model, reference):
    embed, prompt = reference
    first = tiny_model.rerank(QUERY, DOCS, num_prompt_docs=3)
    reordered = [DOCS[r.index] for r in first]
    doc_vectors = np.stack([embed(d + "<|endoftext|>") for d in DOCS])
    expected = doc_vectors @ embed(prompt(QUERY, reordered, 3))
    second = tiny_model.rerank(QUERY, DOCS, num_prompt_docs=3, passes=2)
    got = np.array([r.score for r in sorted(second, key=lambda r: r.index)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
