"""Chroma: the embedding function, reopening persisted collections, and reranking on stored vectors.

Real chromadb clients (EphemeralClient, PersistentClient) with tiny generated checkpoints; every collection gets an
E2Rank function, so Chroma's default ONNX function (a download) is never used.
"""

from __future__ import annotations

import copy
import gc
import json
import textwrap
import uuid
import warnings

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("torch")

from chromadb.utils.embedding_functions import known_embedding_functions  # noqa: E402

from e2rank_integrations import E2RankModel, PromptFormat  # noqa: E402
from e2rank_integrations.chroma import (  # noqa: E402
    ChromaHit,
    E2RankChromaRetriever,
    E2RankEmbeddingFunction,
    rerank_query_result,
)
from e2rank_integrations.errors import E2RankTypeError  # noqa: E402
from e2rank_integrations.prompts import DEFAULT_QUERY_INSTRUCTION  # noqa: E402
from helpers import StubAsyncBackend, run_python  # noqa: E402

DOCS = {
    "beijing": "Beijing is the capital of the People's Republic of China.",
    "shanghai": "Shanghai is China's largest city and its main financial centre.",
    "gravity": "Gravity is the force by which masses attract one another.",
    "tides": "Ocean tides are caused by the Moon's gravity pulling on the oceans.",
    "seasons": "Winter is cold because the Earth's tilt spreads sunlight thinly over the hemisphere.",
    "vaccines": "Vaccines train the immune system to recognise a pathogen before an infection.",
    "python": "Python's global interpreter lock lets one thread run Python bytecode at a time.",
    "everest": "Mount Everest is the highest mountain above sea level, in the Himalayas.",
    "octopus": "An octopus has three hearts and blue blood rich in copper.",
    "press": "The printing press made books cheap and spread literacy across Europe.",
    "bm25": "BM25 ranks documents by term frequency, inverse document frequency and length.",
    "canberra": "Canberra, not Sydney, is the capital of Australia.",
}
IDS = list(DOCS)
METADATAS = [{"topic": "geo" if i % 2 else "science", "n": i} for i in range(len(IDS))]
INCLUDE = ["documents", "metadatas", "distances", "embeddings"]
QUERIES = ["What is the capital of China?", "Why is it cold in winter?"]


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def make_collection(client, function):
    collection = client.create_collection(unique_name(), embedding_function=function)
    collection.add(ids=IDS, documents=list(DOCS.values()), metadatas=METADATAS)
    return collection


def brute_force(backend, query: str) -> tuple[list[str], np.ndarray]:
    """Ids by cosine to the query, best first, and their cosine distances (what Chroma's cosine space returns)."""
    similarity = backend.embed_documents(list(DOCS.values())) @ backend.embed_queries([query])[0]
    order = np.argsort(-similarity, kind="stable")
    return [IDS[i] for i in order], 1.0 - similarity[order]


def reopen_in_a_fresh_process(function, tmp_path, before: str = "", after: str = "") -> dict:
    """Persist a collection made with ``function``; open it in a new interpreter without a function, and query it.

    The script runs ``before``, then queries ``QUERIES`` and retrieves with ``E2RankChromaRetriever``, then runs
    ``after``; it returns the ``out`` dict the script filled (``rebuilt`` is the function Chroma rebuilt).
    """
    path = tmp_path / "db"
    name = make_collection(chromadb.PersistentClient(path=str(path)), function).name
    script = textwrap.dedent(
        f"""
        import json
        import os
        import chromadb
        import e2rank_integrations.chroma  # the one import: registers "e2rank" with Chroma
        from e2rank_integrations.chroma import E2RankChromaRetriever

        collection = chromadb.PersistentClient(path={str(path)!r}).get_collection({name!r})  # no function passed
        out = {{}}
        """
    )
    script += textwrap.dedent(before)
    script += textwrap.dedent(
        f"""
        rebuilt = collection.configuration["embedding_function"]
        out["type"], out["config"] = type(rebuilt).__name__, rebuilt.get_config()
        result = collection.query(query_texts={QUERIES!r}, n_results={len(IDS)}, include=["distances"])
        out["ids"], out["distances"] = result["ids"], result["distances"]
        out["retrieved"] = [hit.id for hit in E2RankChromaRetriever(collection, k=5, top_n=3).retrieve("capital")]
        """
    )
    script += textwrap.dedent(after) + "print(json.dumps(out))\n"
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def assert_reopened_answers(out, backend) -> None:
    """The queries of a reopened collection (``out``) equal brute-force cosine over ``backend``; it retrieved 3."""
    assert out["type"] == "E2RankEmbeddingFunction"
    for i, query in enumerate(QUERIES):
        ids, distances = brute_force(backend, query)
        assert out["ids"][i] == ids
        np.testing.assert_allclose(out["distances"][i], distances, atol=1e-4)
    assert len(out["retrieved"]) == 3 and set(out["retrieved"]) <= set(IDS)


@pytest.fixture(scope="module")
def client():
    return chromadb.EphemeralClient()


# ---------------------------------------------------------------------------- the embedding function


def test_registered_with_chroma():
    assert known_embedding_functions["e2rank"] is E2RankEmbeddingFunction
    assert E2RankEmbeddingFunction.name() == "e2rank"


def test_call_and_embed_query_match_the_backend(tiny_model):
    function = E2RankEmbeddingFunction(tiny_model)
    docs = list(DOCS.values())[:3]
    vectors = function(docs)
    assert isinstance(vectors, list) and all(v.dtype == np.float32 for v in vectors)
    np.testing.assert_allclose(np.stack(vectors), tiny_model.embed_documents(docs), atol=1e-6)
    np.testing.assert_allclose(np.stack(function.embed_query(QUERIES)), tiny_model.embed_queries(QUERIES), atol=1e-6)
    assert function.default_space() == "cosine" and "cosine" in function.supported_spaces()


def test_instruction_reaches_the_queries(tiny_model):
    function = E2RankEmbeddingFunction(tiny_model, instruction="Find the city")
    assert function.get_config()["instruction"] == "Find the city"
    expected = tiny_model.embed_queries(QUERIES, instruction="Find the city")
    np.testing.assert_allclose(np.stack(function.embed_query(QUERIES)), expected, atol=1e-6)
    assert not np.allclose(expected, tiny_model.embed_queries(QUERIES))


def test_ephemeral_query_equals_brute_force_cosine(client, tiny_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    assert collection.configuration_json["hnsw"]["space"] == "cosine"
    result = collection.query(query_texts=QUERIES, n_results=len(IDS), include=["distances"])
    for i, query in enumerate(QUERIES):
        ids, distances = brute_force(tiny_model, query)
        assert result["ids"][i] == ids
        np.testing.assert_allclose(result["distances"][i], distances, atol=1e-4)


def test_persistent_collection_reopens_in_a_fresh_process(tmp_path, tiny_path, other_tiny_path):
    function = E2RankEmbeddingFunction(model=tiny_path)
    out = reopen_in_a_fresh_process(
        function,
        tmp_path,
        after=f"""
        from e2rank_integrations.chroma import E2RankEmbeddingFunction
        from e2rank_integrations.registry import REGISTRY

        out["models_loaded"] = sum(key.startswith("model:") for key in REGISTRY.keys())  # rebuilds share one
        try:
            other = E2RankEmbeddingFunction(model={str(other_tiny_path)!r})
            collection.modify(configuration={{"embedding_function": other}})
        except ValueError as exc:
            out["refused"] = str(exc)
        """,
    )
    assert out["config"] == function.get_config()
    assert_reopened_answers(out, function.backend)
    assert out["models_loaded"] == 1
    assert "cannot change the E2Rank embedding function" in out["refused"]
    assert "model_name_or_path" in out["refused"] and str(other_tiny_path) in out["refused"]


def test_reopening_without_the_import_is_a_clear_chroma_error(tmp_path, tiny_model):
    path = tmp_path / "db"
    make_collection(chromadb.PersistentClient(path=str(path)), E2RankEmbeddingFunction(tiny_model))
    result = run_python(
        f"""
        import chromadb
        collection = chromadb.PersistentClient(path={str(path)!r}).list_collections()[0]
        try:
            collection.query(query_texts=["capital"], n_results=1)
        except ValueError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "e2rank" in result.stdout and "register_embedding_function" in result.stdout


def test_functions_on_the_same_settings_share_one_model(tiny_path):
    first = E2RankEmbeddingFunction(model=tiny_path)
    assert E2RankEmbeddingFunction(model=tiny_path).backend is first.backend
    assert E2RankEmbeddingFunction.build_from_config(first.get_config()).backend is first.backend
    other_settings = E2RankEmbeddingFunction(model=tiny_path, max_length=256)
    assert other_settings.backend is not first.backend
    assert other_settings.get_config()["max_length"] == 256


def test_model_name_or_path_is_the_deprecated_name_of_model(tiny_path):
    with pytest.warns(
        DeprecationWarning, match="E2RankEmbeddingFunction: `model_name_or_path` is deprecated, use `model`"
    ):
        old = E2RankEmbeddingFunction(model_name_or_path=tiny_path)
    assert old.backend is E2RankEmbeddingFunction(model=tiny_path).backend
    assert old.get_config()["model_name_or_path"] == str(tiny_path)  # the stored key: collections already hold it
    with pytest.raises(E2RankTypeError, match="give `model` only"):
        E2RankEmbeddingFunction(model=tiny_path, model_name_or_path=tiny_path)


def test_config_round_trip(fresh_model, tiny_path):
    function = E2RankEmbeddingFunction(fresh_model)
    config = function.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config == {
        "model_name_or_path": str(tiny_path),
        "max_length": 8192,
        "prompts": None,
        "server_url": None,
        "api_key_env": None,
        "instruction": DEFAULT_QUERY_INSTRUCTION,
    }
    rebuilt = E2RankEmbeddingFunction.build_from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.backend is fresh_model  # the live model, not a second copy of the weights
    E2RankEmbeddingFunction.validate_config(config)


def test_a_relative_model_directory_is_stored_absolute(tiny_path, monkeypatch):
    monkeypatch.chdir(tiny_path.parent)
    config = E2RankEmbeddingFunction(model=tiny_path.name).get_config()
    assert config["model_name_or_path"] == str(tiny_path)


def test_custom_prompts_are_stored_and_rebuilt(tiny_model, tiny_path):
    prompts = PromptFormat(query_template="Task: {instruction}\nQuestion: {query}")
    model = E2RankModel(tiny_model.model, tiny_model.tokenizer, name_or_path=str(tiny_path), prompts=prompts)
    config = E2RankEmbeddingFunction(model).get_config()
    assert config["prompts"] == prompts.to_dict()
    del model
    gc.collect()  # the caller's model is gone: a rebuild loads one with the stored settings
    rebuilt = E2RankEmbeddingFunction.build_from_config(config)
    assert rebuilt.backend.prompts == prompts
    assert rebuilt.get_config() == config


def test_validate_config_update_refuses_model_and_instruction_changes(tiny_model, tiny_path, other_tiny_path):
    function = E2RankEmbeddingFunction(tiny_model)
    old = function.get_config()
    function.validate_config_update(old, dict(old))
    function.validate_config_update(old, {**old, "api_key_env": "ROTATED_KEY"})
    changes = {
        "model_name_or_path": str(other_tiny_path),
        "instruction": "Another task",
        "max_length": 512,
        "server_url": "http://127.0.0.1:8000",
    }
    for key, value in changes.items():
        with pytest.raises(ValueError, match=f"cannot change .*{key}"):
            function.validate_config_update(old, {**old, key: value})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_name_or_path": "m", "instruction": "i", "colour": "red"}, "unknown keys .*colour"),
        ({"instruction": "i"}, "exactly one of model_name_or_path and server_url"),
        ({"model_name_or_path": "m", "server_url": "http://x", "instruction": "i"}, "exactly one"),
        ({"model_name_or_path": "m"}, "query instruction"),
    ],
)
def test_bad_configs_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        E2RankEmbeddingFunction.build_from_config(config)


def test_remote_config_with_an_unset_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("E2RANK_TEST_UNSET", raising=False)
    config = {"server_url": "http://127.0.0.1:1", "api_key_env": "E2RANK_TEST_UNSET", "instruction": "i"}
    with pytest.raises(ValueError, match="E2RANK_TEST_UNSET"):
        E2RankEmbeddingFunction.build_from_config(config)


def test_a_backend_without_a_name_is_stored_as_legacy(client, tiny_model):
    anonymous = E2RankModel(tiny_model.model, tiny_model.tokenizer)  # built by hand: nothing could rebuild it
    function = E2RankEmbeddingFunction(anonymous)
    with pytest.raises(ValueError, match="cannot describe"):
        function.get_config()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        collection = make_collection(client, function)
    assert collection.configuration_json["embedding_function"] == {"type": "legacy"}
    assert (
        collection.query(query_texts=QUERIES[:1], n_results=2)["ids"][0][0] == brute_force(tiny_model, QUERIES[0])[0][0]
    )


def test_bad_input(tiny_model):
    function = E2RankEmbeddingFunction(tiny_model)
    with pytest.raises(ValueError, match="at least one text"):
        function([])
    with pytest.raises(ValueError, match="at least one text"):
        function.embed_query([])
    with pytest.raises(TypeError, match=r"input\[1\] must be a string, got int"):
        function(["fine", 3])
    with pytest.raises(TypeError, match="not a single str"):
        function.embed_query("a bare string")
    as_numpy = function(np.array(["first text", "second"]))  # numpy string arrays work like lists
    np.testing.assert_allclose(np.stack(as_numpy), np.stack(function(["first text", "second"])))


def test_constructor_errors(tiny_model, tiny_path):
    with pytest.raises(ValueError, match=r"exactly one of .* got none"):
        E2RankEmbeddingFunction()
    with pytest.raises(ValueError, match=r"got backend, model$"):
        E2RankEmbeddingFunction(tiny_model, model=tiny_path)
    with pytest.raises(TypeError, match="no model options"):
        E2RankEmbeddingFunction(tiny_model, device="cpu")
    with pytest.raises(TypeError, match="object has no embed_queries"):
        E2RankEmbeddingFunction(object())
    with pytest.raises(TypeError, match="AsyncE2RankClient"):
        E2RankEmbeddingFunction(StubAsyncBackend())
    with pytest.raises(TypeError, match="api_key_env"):
        E2RankEmbeddingFunction(tiny_model, api_key_env="")
    with pytest.raises(ValueError, match="api_key_env names the API key of a server"):
        E2RankEmbeddingFunction(tiny_model, api_key_env="E2RANK_API_KEY")
    with pytest.raises(ValueError, match="instruction must be a non-empty string"):
        E2RankEmbeddingFunction(tiny_model, instruction=" ")


# ---------------------------------------------------------------------------- reranking query results


def test_rerank_on_stored_vectors_embeds_only_the_prompt(client, tiny_model, fresh_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))  # fresh_model's cache stays empty
    query = QUERIES[0]
    result = collection.query(query_texts=[query], n_results=8, include=INCLUDE)
    untouched = copy.deepcopy(result)

    hits = rerank_query_result(fresh_model, query, result)
    assert fresh_model.stats()["texts_embedded"] == 1 and fresh_model.stats()["cache_hits"] == 0
    expected = tiny_model.rerank(query, result["documents"][0])
    assert [h.index for h in hits] == [r.index for r in expected]
    np.testing.assert_allclose([h.score for h in hits], [r.score for r in expected], atol=1e-5)
    for hit in hits:
        assert isinstance(hit, ChromaHit)
        assert hit.id == result["ids"][0][hit.index] and hit.document == DOCS[hit.id]
        assert hit.metadata == METADATAS[IDS.index(hit.id)]
        assert hit.distance == pytest.approx(result["distances"][0][hit.index])
    assert str(result) == str(untouched)  # nothing the caller passed was changed
    hits[0].metadata["topic"] = "changed"
    assert result["metadatas"][0][hits[0].index]["topic"] != "changed"


def test_rerank_without_stored_vectors_uses_the_cache_then_the_model(client, fresh_model, tiny_model, tiny_path):
    collection = make_collection(client, E2RankEmbeddingFunction(fresh_model))  # indexing fills fresh_model's cache
    query = QUERIES[1]
    result = collection.query(query_texts=[query], n_results=6, include=["documents", "metadatas"])
    fresh_model.reset_stats()
    hits = rerank_query_result(fresh_model, query, result, top_n=3)
    assert fresh_model.stats()["texts_embedded"] == 1 and fresh_model.stats()["cache_hits"] == 6
    assert len(hits) == 3 and all(hit.distance is None for hit in hits)

    empty_cache = E2RankModel(tiny_model.model, tiny_model.tokenizer, name_or_path=str(tiny_path))
    again = rerank_query_result(empty_cache, query, result, top_n=3)
    assert empty_cache.stats()["texts_embedded"] == 7  # six candidates and the prompt
    assert [h.id for h in again] == [h.id for h in hits]


def test_rerank_options(client, tiny_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    result = collection.query(query_texts=QUERIES, n_results=6, include=INCLUDE)
    with pytest.raises(ValueError, match="holds 2 queries; pass query_index"):
        rerank_query_result(tiny_model, QUERIES[1], result)
    with pytest.raises(ValueError, match="query_index must be"):
        rerank_query_result(tiny_model, QUERIES[1], result, query_index=2)
    options = {"top_n": 2, "passes": 2, "num_prompt_docs": 4, "max_prompt_tokens": 60}
    hits = rerank_query_result(tiny_model, QUERIES[1], result, query_index=1, **options)
    expected = tiny_model.rerank(QUERIES[1], result["documents"][1], **options)
    assert [h.index for h in hits] == [r.index for r in expected]
    assert [h.id for h in hits] == [result["ids"][1][r.index] for r in expected]

    every = rerank_query_result(tiny_model, QUERIES[1], result, query_index=1)
    middle = every[3].score
    above = rerank_query_result(tiny_model, QUERIES[1], result, query_index=1, score_threshold=middle)
    assert above == every[:4]
    assert (
        rerank_query_result(tiny_model, QUERIES[1], result, query_index=1, top_n=2, score_threshold=middle) == every[:2]
    )
    with pytest.raises(ValueError, match="score_threshold must be finite"):
        rerank_query_result(tiny_model, QUERIES[1], result, query_index=1, score_threshold=float("inf"))

    nothing = collection.query(query_texts=QUERIES[:1], n_results=3, where={"topic": "none"}, include=INCLUDE)
    assert rerank_query_result(tiny_model, QUERIES[0], nothing) == []


def test_rerank_bad_results(client, tiny_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    result = collection.query(query_texts=QUERIES[:1], n_results=3, include=INCLUDE)
    with pytest.raises(TypeError, match=r"what collection\.query returned"):
        rerank_query_result(tiny_model, "q", [["a"]])
    with pytest.raises(ValueError, match="no documents"):
        rerank_query_result(tiny_model, "q", {**result, "documents": None})
    with pytest.raises(ValueError, match="2 distances for 3 ids"):
        rerank_query_result(tiny_model, "q", {**result, "distances": [result["distances"][0][:2]]})
    with pytest.raises(ValueError, match="dimension 64"):
        rerank_query_result(tiny_model, "q", {**result, "embeddings": [np.ones((3, 5))]})
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        rerank_query_result(tiny_model, "", result)
    with pytest.raises(TypeError, match="has no embed_queries"):
        rerank_query_result("a model name", "q", result)

    collection.add(ids=["vector-only"], embeddings=[np.ones(64, dtype=np.float32)])  # a record with no document
    with_gap = collection.query(query_embeddings=[np.ones(64)], n_results=2, include=INCLUDE)
    with pytest.raises(ValueError, match="record 'vector-only' has no document"):
        rerank_query_result(tiny_model, "q", with_gap)


# ---------------------------------------------------------------------------- the retriever


def test_retriever_queries_and_reranks_in_one_call(client, tiny_path):
    function = E2RankEmbeddingFunction(model=tiny_path)
    collection = make_collection(client, function)
    retriever = E2RankChromaRetriever(collection, k=8, top_n=3)
    assert retriever.backend is function.backend  # from the collection's stored function
    hits = retriever.retrieve(QUERIES[0])
    result = collection.query(query_texts=QUERIES[:1], n_results=8, include=INCLUDE)
    assert hits == rerank_query_result(function.backend, QUERIES[0], result, top_n=3)

    filtered = retriever.retrieve(QUERIES[0], where={"topic": "geo"})
    assert filtered and all(hit.metadata["topic"] == "geo" for hit in filtered)


def test_retrieve_overrides_k_and_top_n_and_keeps_the_stored_vectors(client, tiny_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    retriever = E2RankChromaRetriever(collection, tiny_model, k=8, top_n=3)
    hits = retriever.retrieve(QUERIES[0], k=12, top_n=6)
    result = collection.query(query_texts=QUERIES[:1], n_results=12, include=INCLUDE)
    assert hits == rerank_query_result(tiny_model, QUERIES[0], result, top_n=6)
    assert max(hit.index for hit in hits) < 12 and len(hits) == 6
    stored = collection.get(ids=[hit.id for hit in hits], include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"]))
    for hit in hits:
        assert hit.embedding.dtype == np.float32
        np.testing.assert_array_equal(hit.embedding, np.asarray(by_id[hit.id], dtype=np.float32))
    assert len(retriever.retrieve(QUERIES[0])) == 3  # the retriever's own top_n again
    with pytest.raises(ValueError, match="k must be >= 1"):
        retriever.retrieve(QUERIES[0], k=0)


def test_retriever_rerank_instruction_and_score_threshold(client, tiny_model):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    result = collection.query(query_texts=QUERIES[:1], n_results=8, include=INCLUDE)
    every = rerank_query_result(tiny_model, QUERIES[0], result, instruction="Rank these:")
    assert [h.score for h in every] != [h.score for h in rerank_query_result(tiny_model, QUERIES[0], result)]
    middle = every[4].score
    retriever = E2RankChromaRetriever(
        collection, tiny_model, k=8, top_n=None, instruction="Rank these:", score_threshold=middle
    )
    assert retriever.retrieve(QUERIES[0]) == every[:5]
    with pytest.raises(ValueError, match="score_threshold must be finite"):
        E2RankChromaRetriever(collection, tiny_model, score_threshold=float("nan"))
    with pytest.raises(ValueError, match="instruction must be a non-empty string"):
        E2RankChromaRetriever(collection, tiny_model, instruction=" ")


def test_build_from_config_passes_options_to_a_model_not_loaded_yet(tiny_path, tmp_path):
    config = E2RankEmbeddingFunction(model=tiny_path).get_config()
    cache = tmp_path / "vectors.sqlite"
    rebuilt = E2RankEmbeddingFunction.build_from_config({**config, "max_length": 77}, cache=str(cache))
    assert rebuilt.backend.max_length == 77  # not live yet: loaded with the stored settings and the options
    rebuilt(["a text"])
    assert cache.exists()


def test_retriever_embeds_the_query_and_the_prompt(client, fresh_model):
    collection = make_collection(client, E2RankEmbeddingFunction(fresh_model))
    fresh_model.reset_stats()
    E2RankChromaRetriever(collection, fresh_model, k=10, top_n=None).retrieve(QUERIES[1])
    assert fresh_model.stats()["texts_embedded"] == 2


def test_retriever_errors(client, tiny_model, other_tiny_path):
    collection = make_collection(client, E2RankEmbeddingFunction(tiny_model))
    with pytest.raises(TypeError, match="must be a Chroma collection"):
        E2RankChromaRetriever("docs", tiny_model)
    with pytest.raises(ValueError, match="k must be >= 1"):
        E2RankChromaRetriever(collection, tiny_model, k=0)
    with pytest.raises(TypeError, match="top_n must be a positive integer"):
        E2RankChromaRetriever(collection, tiny_model, top_n="5")
    other_model = E2RankEmbeddingFunction(model=other_tiny_path).backend
    with pytest.raises(ValueError, match="model_name_or_path"):
        E2RankChromaRetriever(collection, other_model)


def test_retriever_on_a_collection_without_an_e2rank_function(client, tiny_model):
    plain = client.create_collection(unique_name(), embedding_function=None)  # vectors come from outside
    plain.add(ids=IDS, embeddings=list(tiny_model.embed_documents(list(DOCS.values()))), documents=list(DOCS.values()))
    with pytest.raises(TypeError, match=r"not created with E2RankEmbeddingFunction; pass backend="):
        E2RankChromaRetriever(plain)
    hits = E2RankChromaRetriever(plain, tiny_model, k=len(IDS), top_n=None).retrieve(QUERIES[0])  # no ONNX download
    first_stage = sorted(hits, key=lambda hit: hit.index)
    assert [hit.id for hit in first_stage] == brute_force(tiny_model, QUERIES[0])[0]  # E2Rank embedded the query


# ---------------------------------------------------------------------------- through an e2rank server

KEY_ENV = "E2RANK_TEST_API_KEY"


@pytest.fixture
def key_in_env(monkeypatch):
    """``keyed_server``'s API key in the environment variable ``KEY_ENV`` (subprocesses inherit it)."""
    from .conftest import API_KEY

    monkeypatch.setenv(KEY_ENV, API_KEY)


def test_server_url_config_names_the_key_variable_never_the_key(keyed_server, key_in_env, tiny_model):
    from e2rank_integrations import E2RankClient

    from .conftest import API_KEY

    function = E2RankEmbeddingFunction(server_url=keyed_server.url + "/", api_key_env=KEY_ENV)
    assert isinstance(function.backend, E2RankClient)
    config = function.get_config()
    assert config == {
        "model_name_or_path": None,
        "max_length": None,
        "prompts": None,
        "server_url": keyed_server.url,
        "api_key_env": KEY_ENV,
        "instruction": DEFAULT_QUERY_INSTRUCTION,
    }
    assert API_KEY not in json.dumps(config)
    docs = list(DOCS.values())
    np.testing.assert_allclose(np.stack(function(docs)), tiny_model.embed_documents(docs), atol=1e-5)
    np.testing.assert_allclose(np.stack(function.embed_query(QUERIES)), tiny_model.embed_queries(QUERIES), atol=1e-5)
    assert E2RankEmbeddingFunction.build_from_config(config).backend is function.backend  # one client per process

    with E2RankClient(keyed_server.url, api_key=API_KEY) as own:  # a client of the caller's: described by base_url
        assert E2RankEmbeddingFunction(own, api_key_env=KEY_ENV).get_config() == config
    with E2RankClient(keyed_server.url + "/v1", api="openai") as openai_mode, pytest.raises(ValueError, match="cannot"):
        E2RankEmbeddingFunction(openai_mode).get_config()  # rebuilt from its URL it would speak the wrong protocol
    with pytest.raises(TypeError, match="through api_key_env"):
        E2RankEmbeddingFunction(server_url=keyed_server.url, api_key=API_KEY)
    with pytest.raises(ValueError, match="api='openai'"):
        E2RankEmbeddingFunction(server_url=keyed_server.url + "/v1", api="openai")


def test_persisted_remote_collection_reopens_in_a_fresh_process(keyed_server, key_in_env, tiny_model, tmp_path):
    function = E2RankEmbeddingFunction(server_url=keyed_server.url, api_key_env=KEY_ENV)
    out = reopen_in_a_fresh_process(
        function,
        tmp_path,
        before=f"""
        key = os.environ.pop({KEY_ENV!r})
        try:
            collection.query(query_texts=["capital"], n_results=1)
        except ValueError as exc:
            out["unset"] = str(exc)
        os.environ[{KEY_ENV!r}] = key
        """,
        after="""
        from e2rank_integrations import E2RankClient

        out["client"] = isinstance(rebuilt.backend, E2RankClient) and rebuilt.backend.base_url
        """,
    )
    assert KEY_ENV in out["unset"] and "not set" in out["unset"]
    assert out["client"] == keyed_server.url
    assert out["config"] == function.get_config()
    assert_reopened_answers(out, tiny_model)


def test_rerank_through_the_server_sends_the_stored_vectors(keyed_server, key_in_env, tiny_model, client):
    function = E2RankEmbeddingFunction(server_url=keyed_server.url, api_key_env=KEY_ENV)
    remote = function.backend
    collection = make_collection(client, function)
    query = "Which city is the capital of Australia?"  # a prompt no other test sends
    result = collection.query(query_texts=[query], n_results=8, include=INCLUDE)

    before = remote.stats()
    hits = rerank_query_result(remote, query, result)
    after = remote.stats()
    # One text embedded and no cache lookup: the server scored the vectors Chroma stored, which the client sent.
    assert (after["texts_embedded"] - before["texts_embedded"], after["cache_hits"] - before["cache_hits"]) == (1, 0)
    expected = tiny_model.rerank(query, result["documents"][0])
    assert [h.index for h in hits] == [r.index for r in expected]
    np.testing.assert_allclose([h.score for h in hits], [r.score for r in expected], atol=1e-5)
    assert [h.id for h in hits] == [result["ids"][0][r.index] for r in expected]

    without_vectors = {**result, "embeddings": None}  # the server's cache then serves them: added through it
    before = remote.stats()
    rerank_query_result(remote, query, without_vectors, num_prompt_docs=4)  # another prompt: not cached yet
    after = remote.stats()
    assert (after["texts_embedded"] - before["texts_embedded"], after["cache_hits"] - before["cache_hits"]) == (1, 8)


def test_open_client(tmp_path):
    from e2rank_integrations.chroma import open_client
    from e2rank_integrations.errors import E2RankValueError

    open_client(str(tmp_path / "db")).get_or_create_collection("kept").add(ids=["a"], embeddings=[[1.0, 0.0]])
    assert open_client(str(tmp_path / "db")).get_collection("kept").count() == 1  # the same embedded database
    with pytest.raises(E2RankValueError, match="give `path`"):
        open_client()
