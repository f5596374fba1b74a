"""GET /v1/models; POST /extras/tokenize, /extras/tokenize/count, /extras/detokenize
(llama-cpp-python's extras, on a vocab-only Llama: no slot needed)."""

from __future__ import annotations

from typing import Any, Dict

import anyio
from fastapi import APIRouter, Request

from bitnet.server.routes.common import AUTH, server_state
from bitnet.server.types import DetokenizeInputRequest, TokenizeInputRequest

router = APIRouter(dependencies=AUTH)


@router.get("/v1/models", tags=["OpenAI V1"], summary="Models")
async def get_models(request: Request) -> Dict[str, Any]:
    state = server_state(request)
    data = [{"id": alias, "object": "model", "owned_by": "me", "permissions": []} for alias in state.entries]
    return {"object": "list", "data": data}


async def _tokens(request: Request, body: TokenizeInputRequest) -> Any:
    entry = server_state(request).resolve(body.model)  # counting past the context is allowed
    return await anyio.to_thread.run_sync(
        lambda: entry.vocab.tokenize(body.input.encode("utf-8"), special=True)
    )


@router.post("/extras/tokenize", tags=["Extras"], summary="Tokenize")
async def tokenize(request: Request, body: TokenizeInputRequest) -> Dict[str, Any]:
    return {"tokens": await _tokens(request, body)}


@router.post("/extras/tokenize/count", tags=["Extras"], summary="Tokenize Count")
async def count_query_tokens(request: Request, body: TokenizeInputRequest) -> Dict[str, Any]:
    return {"count": len(await _tokens(request, body))}


@router.post("/extras/detokenize", tags=["Extras"], summary="Detokenize")
async def detokenize(request: Request, body: DetokenizeInputRequest) -> Dict[str, Any]:
    entry = server_state(request).resolve(body.model)
    entry.check_token_ids(body.tokens, "tokens")
    raw = await anyio.to_thread.run_sync(lambda: entry.vocab.detokenize(body.tokens))
    return {"text": raw.decode("utf-8", errors="replace")}
