"""POST /v1/embeddings in OpenAI's shape: one pooled vector per input (a model whose file
declares no pooling is mean-pooled; llama-server refuses such a model instead), a string or a
list of strings, `encoding_format` "float" or "base64" (little-endian float32, what the
openai SDK decodes). Token-id inputs and a `dimensions` other than the model's are a 400; so
are empty inputs and a model served without `embedding`. Inputs run one by one on a slot, so
a client that leaves stops the request between inputs.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Iterator, List

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from bitnet.server.errors import APIError
from bitnet.server.generation import run
from bitnet.server.routes.common import AUTH, new_work, server_state
from bitnet.server.types import CreateEmbeddingRequest

router = APIRouter(dependencies=AUTH)


def _inputs(body: CreateEmbeddingRequest) -> List[str]:
    raw = body.input
    inputs = [raw] if isinstance(raw, str) else list(raw)
    if not inputs:
        raise APIError(400, "input must not be empty", param="input")
    if not all(isinstance(x, str) for x in inputs):
        raise APIError(400, "token-id inputs are not supported: send text", param="input", code="unsupported")
    if any(x == "" for x in inputs):
        raise APIError(400, "input must not contain empty strings", param="input")
    return inputs  # type: ignore[return-value]


def _encode(vector: List[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


@router.post("/v1/embeddings", tags=["OpenAI V1"], summary="Embedding")
async def create_embedding(request: Request, body: CreateEmbeddingRequest) -> Response:
    state = server_state(request)
    entry = state.resolve(body.model)
    if not entry.embedding:
        raise APIError(
            400,
            f"model {entry.alias!r} is served without embeddings (start it with --embedding)",
            param="model",
            code="embeddings_disabled",
        )
    inputs = _inputs(body)
    for text in inputs:
        entry.check_prompt_size(len(text.encode("utf-8")), None, chat=False)
    model_name = body.model or entry.alias

    def job(llama: Any) -> Iterator[Dict[str, Any]]:
        data, tokens = [], 0
        for i, text in enumerate(inputs):
            llama.work.check()
            out = llama.create_embedding(input=[text], model=model_name)
            vector = out["data"][0]["embedding"]
            if body.dimensions is not None and body.dimensions != len(vector):
                raise APIError(
                    400,
                    f"dimensions={body.dimensions}: this model's embeddings have {len(vector)}",
                    param="dimensions",
                )
            data.append(
                {"object": "embedding", "index": i, "embedding": _encode(vector, body.encoding_format)}
            )
            tokens += out["usage"]["prompt_tokens"]
            llama.work.prompt_tokens += out["usage"]["prompt_tokens"]
        yield {
            "object": "list",
            "data": data,
            "model": model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return await run(state, entry, request, new_work(request), job, stream=False)
