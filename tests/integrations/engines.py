"""Stand-ins for other engines' ``/v1/embeddings``, on real loopback ports, over the tiny checkpoint.

Each accepts exactly the request schema its project documents at the version named (unknown fields are refused
here, where upstream ignores or logs them, so that one of our extensions leaking into a request fails a test) and
answers in that project's shape. The weights run as those engines run them: plain transformers on the token ids,
one input at a time, last-token pooling. What each engine does to inputs is what decides exactness:

- vLLM 0.10.1 (``vllm/entrypoints/openai/protocol.py``, ``EmbeddingCompletionRequest``): text or token ids,
  embedded as given (``add_special_tokens`` adds none for Qwen3's tokenizer); validation errors are 400s.
- text-embeddings-inference 1.9.3 (``router/src/http/types.rs``, ``OpenAICompatRequest``): ``input`` is a text,
  ids, or a batch of either (``Input``/``InputType``), embedded as given; undeserialisable bodies are plain-text
  422s (axum's JSON rejection).
- a sentence-transformers engine, Infinity 0.0.78's text schema (``infinity_emb/fastapi_schemas/pymodels.py``,
  ``_OpenAIEmbeddingInput_Text``): strings only (token ids are a 422) and every text stripped, as
  sentence-transformers' ``Transformer.tokenize`` does. The real Infinity runs in ``tox -e interop``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.responses import JSONResponse, PlainTextResponse

from e2rank_integrations.protocol import encode_vector

from .serving import running_server

Ids = list[Annotated[StrictInt, Field(ge=0)]]


class VLLMEmbeddingRequest(BaseModel):
    """vLLM 0.10.1 ``EmbeddingCompletionRequest``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    input: Ids | list[Ids] | str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    truncate_prompt_tokens: Annotated[int, Field(ge=-1)] | None = None
    add_special_tokens: bool = True
    priority: int = 0


class TEIEmbeddingRequest(BaseModel):
    """text-embeddings-inference 1.9.3 ``OpenAICompatRequest``."""

    model_config = ConfigDict(extra="forbid")
    input: str | Ids | list[str | Ids]
    model: str | None = None
    user: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


class STEmbeddingRequest(BaseModel):
    """Infinity 0.0.78 ``_OpenAIEmbeddingInput_Text``."""

    model_config = ConfigDict(extra="forbid")
    input: list[Annotated[str, Field(min_length=1)]] | Annotated[str, Field(min_length=1)]
    model: str = "default/not-specified"
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    dimensions: int = 0
    modality: Literal["text"] = "text"


def as_items(value: Any) -> list[Any]:
    """The inputs of a request: a text, or one flat list of ids, is one input."""
    single = isinstance(value, str) or (bool(value) and isinstance(value[0], int))
    return [value] if single else list(value)


class Engine:
    """The model as another engine runs it, and a record of what it was sent."""

    def __init__(self, model: Any, *, strip: bool = False) -> None:
        self.model = model
        self.strip = strip
        self.requests: Counter[str] = Counter()  # "GET /info", "POST /v1/embeddings"...
        self.inputs: list[Any] = []  # every input item received
        self._lock = threading.Lock()

    def ids(self, item: str | list[int], add_special_tokens: bool = True) -> list[int]:
        if isinstance(item, list):
            return item
        text = item.strip() if self.strip else item
        ids: list[int] = self.model.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def embed(self, rows: list[list[int]]) -> np.ndarray:
        out = []
        with self._lock, torch.inference_mode():
            for ids in rows:
                hidden = self.model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float()
                out.append(torch.nn.functional.normalize(hidden, dim=-1).numpy())
        return np.asarray(out, dtype=np.float32)

    def answer(self, body: Any, add_special_tokens: bool = True, **extra: Any) -> dict[str, Any]:
        """Embed a request's inputs and answer in the OpenAI shape (plus an engine's own fields)."""
        items = as_items(body.input)
        rows = [self.ids(item, add_special_tokens) for item in items]
        self.inputs.extend(items)
        vectors = self.embed(rows)
        encode = (lambda v: v.tolist()) if body.encoding_format == "float" else encode_vector
        data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
        tokens = sum(map(len, rows))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {**extra, "object": "list", "data": data, "model": "e2rank", "usage": usage}

    def app(self, kind: Literal["vllm", "tei", "st"]) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            with self._lock:
                self.requests[f"{request.method} {request.url.path}"] += 1
            return await call_next(request)

        if kind == "vllm":

            @app.exception_handler(RequestValidationError)
            async def bad_request(request: Request, exc: Exception) -> JSONResponse:
                error = {"message": str(exc), "type": "BadRequestError", "param": None, "code": 400}
                return JSONResponse({"error": error}, status_code=400)

            @app.post("/v1/embeddings")
            def vllm(body: VLLMEmbeddingRequest) -> dict[str, Any]:
                extra = {"id": f"embd-{uuid.uuid4().hex}", "created": int(time.time())}
                return self.answer(body, body.add_special_tokens, **extra)

        elif kind == "tei":

            @app.exception_handler(RequestValidationError)
            async def unprocessable(request: Request, exc: Exception) -> PlainTextResponse:
                return PlainTextResponse(f"Failed to deserialize the JSON body into the target type: {exc}", 422)

            @app.post("/v1/embeddings")
            def tei(body: TEIEmbeddingRequest) -> dict[str, Any]:
                return self.answer(body)

        else:

            @app.post("/v1/embeddings")
            def sentence_transformers(body: STEmbeddingRequest) -> dict[str, Any]:
                return self.answer(body)

        return app


@contextmanager
def engine_server(kind: Literal["vllm", "tei", "st"], model: Any, port: int = 0):
    """Serve a stand-in on a loopback port (a free one unless given); yields ``(base_url ending in /v1, Engine)``."""
    engine = Engine(model, strip=kind == "st")
    with running_server(engine.app(kind), wait_ready=False, port=port) as running:
        yield running.url + "/v1", engine
