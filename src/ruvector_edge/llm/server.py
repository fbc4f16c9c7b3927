"""OpenAI-compatible HTTP API for :class:`~ruvector_edge.llm.RuvLLM` (FastAPI).

Routes (all JSON; errors are OpenAI error objects ``{"error": {message, type, param, code}}``):

- ``POST /v1/chat/completions``: chat; ``"stream": true`` answers with server-sent events in
  OpenAI's ``chat.completion.chunk`` format ending in ``data: [DONE]``. ``model`` is ``auto``
  (the router decides) or a configured model name. The response carries an extra ``ruvllm``
  object (request id for feedback, routing, sources, latency split). Extension:
  ``session_id`` (from ``POST /v1/sessions``) keeps a multi-turn history on the server.
- ``POST /v1/embeddings``: ``model`` is the embedder's name or ``default``; ``float`` or
  ``base64`` encoding (the ``openai`` client asks for base64).
- ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/sessions``, ``POST /v1/feedback``,
  ``GET /v1/patterns``, ``GET /v1/stats``, ``GET /v1/health`` (the only route that needs no
  API key, for load balancers).

Status codes: 400 bad request (also for what FastAPI would answer 422), 401 missing or wrong
bearer key, 404 unknown id/route, 405 wrong method, 413 body above ``max_body_bytes``, 429
capacity, 502 a backend failed. An unexpected exception is logged and answered with a 500
that carries no traceback.
"""

from __future__ import annotations

import base64
import hmac
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self, TypeVar

import msgspec
import numpy as np
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ruvector_edge.errors import (
    AuthError,
    CapacityError,
    EdgeError,
    InvalidInputError,
    NotFoundError,
)
from ruvector_edge.llm import ChatMessage, Feedback
from ruvector_edge.llm import Response as LLMResponse

if TYPE_CHECKING:
    from ruvector_edge.llm import RuvLLM

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "EmbeddingList",
    "EmbeddingRequest",
    "ErrorResponse",
    "FeedbackRequest",
    "create_app",
    "jsonable",
]

logger = logging.getLogger("ruvector_edge.llm.server")

DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
MAX_MESSAGES: Final = 512
MAX_TEXT_CHARS: Final = 200_000
MAX_EMBED_INPUTS: Final = 2048
MAX_TOKENS_LIMIT: Final = 1 << 20
MAX_ID_CHARS: Final = 256
DEFAULT_EMBEDDING_MODEL: Final = "default"
AUTO_MODEL: Final = "auto"

T = TypeVar("T")


# ==================================================================== schemas
def _check_unicode(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "text must be valid Unicode: lone surrogate code points are not allowed"
            ) from None
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Request(_Model):
    # Strict: JSON types must match the schema (false is not a number, 1.0 is not an
    # integer); an integer still fills a number field.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)

    @model_validator(mode="after")
    def _valid_unicode(self) -> Self:
        # JSON may carry lone surrogates (\ud800); they cannot be encoded as UTF-8, so
        # they are refused here instead of failing deep inside the orchestrator.
        for name in type(self).model_fields:
            _check_unicode(getattr(self, name))
        return self


class ErrorDetail(_Model):
    """The body of an OpenAI error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Model):
    """``{"error": {...}}``, what every failed request gets."""

    error: ErrorDetail


class TextContentPart(_Request):
    """A text part of a message's content (image and audio parts are not supported)."""

    type: Literal["text"]
    text: str = Field(max_length=MAX_TEXT_CHARS)


class ChatMessageIn(_Request):
    """One message of a chat request; ``developer`` counts as ``system``."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | list[TextContentPart] | None = None
    name: str | None = Field(default=None, max_length=MAX_ID_CHARS)

    def text(self) -> str:
        """The content as plain text (text parts joined by newlines)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(_Request):
    """OpenAI's ``stream_options``: ``include_usage`` adds a final usage chunk."""

    include_usage: bool = False


class ChatCompletionRequest(_Request):
    """``POST /v1/chat/completions`` body (OpenAI fields; unsupported ones are ignored)."""

    model: str = Field(
        default=AUTO_MODEL,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="'auto' lets the router choose; otherwise a name from GET /v1/models.",
    )
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is supported.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    user: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="ruvLLM extension: a session from POST /v1/sessions; the last user "
        "message is asked within that session's history (earlier messages are ignored).",
    )


class AssistantMessage(_Model):
    """The generated message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(_Model):
    """One completion choice (there is always exactly one)."""

    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(_Model):
    """Token counts of a request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RoutingOut(_Model):
    """Which model the router chose and how sure it was."""

    model: str
    context_size: int
    confidence: float | None
    fallback: bool
    probabilities: dict[str, float | None]
    forced: bool = Field(default=False, description="The request named the model.")
    explored: bool = Field(default=False, description="The router explored a non-best model.")


class SourceOut(_Model):
    """A retrieved document that went into the prompt."""

    id: str
    text: str
    score: float | None
    metadata: dict[str, Any]


class RuvLLMInfo(_Model):
    """ruvLLM extension fields; ``request_id`` is what ``POST /v1/feedback`` needs."""

    request_id: str
    session_id: str | None
    confidence: float | None
    routing: RoutingOut
    sources: list[SourceOut]
    latency_ms: dict[str, float | None]


class ChatCompletion(_Model):
    """OpenAI ``chat.completion`` plus the ``ruvllm`` extension."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    ruvllm: RuvLLMInfo


class ChunkDelta(_Model):
    """The increment a stream chunk carries."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(_Model):
    """The single choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(_Model):
    """OpenAI ``chat.completion.chunk`` (one server-sent event)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    ruvllm: RuvLLMInfo | None = None


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings`` body; token-id input is refused (send text)."""

    input: (
        Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
        | Annotated[list[Annotated[str, Field(max_length=MAX_TEXT_CHARS)]], Field(min_length=1)]
        | list[int]
        | list[list[int]]
    ) = Field(description="A string or a list of strings (at most 2048).")
    model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The embedder's name (see GET /v1/models) or 'default'.",
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=1 << 16)
    user: str | None = Field(default=None, max_length=MAX_ID_CHARS)


class Embedding(_Model):
    """One embedding: floats, or base64 of little-endian float32 bytes."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_Model):
    """Token counts of an embeddings request."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Model):
    """``POST /v1/embeddings`` response."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(_Model):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(_Model):
    """``GET /v1/models`` response."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class SessionOut(_Model):
    """A new conversation session."""

    id: str
    object: Literal["session"] = "session"


class FeedbackRequest(_Request):
    """``POST /v1/feedback`` body: rate an earlier response by its ``request_id``."""

    request_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    rating: int | None = Field(default=None, ge=1, le=5)
    task_success: bool | None = None
    correction: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class FeedbackAck(_Model):
    """``POST /v1/feedback`` response."""

    object: Literal["feedback"] = "feedback"
    request_id: str
    accepted: bool = True


class PatternList(_Model):
    """``GET /v1/patterns`` response: what the orchestrator has learned."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class Health(_Model):
    """``GET /v1/health`` response."""

    status: Literal["ok"] = "ok"
    backend: str
    embedder: str
    models: list[str]
    uptime_s: float


class Stats(_Model):
    """``GET /v1/stats`` response: the orchestrator's and the server's counters."""

    llm: dict[str, Any]
    server: dict[str, Any]


# ==================================================================== fast path
# The plain chat request (string contents, no stream, no session) decoded by msgspec,
# mirroring ChatCompletionRequest's fields. Anything these types or _fast_request_ok do
# not accept goes to the FastAPI route, whose pydantic model decides (and words the
# error); so the fast path only answers requests the route would answer the same way.
class _FastMessage(msgspec.Struct):
    role: str
    content: str | None = None
    name: str | None = None


class _FastChatRequest(msgspec.Struct):
    messages: list[_FastMessage]
    model: str = AUTO_MODEL
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    user: str | None = None
    session_id: str | None = None


_FAST_DECODER: Final = msgspec.json.Decoder(_FastChatRequest)
_FAST_ENCODER: Final = msgspec.json.Encoder()
_ROLES: Final = frozenset(("system", "developer", "user", "assistant"))


def _opt_in(value: float | None, lo: float, hi: float) -> bool:
    return value is None or lo <= value <= hi


def _fast_request_ok(req: _FastChatRequest) -> bool:
    """Would ChatCompletionRequest accept ``req`` with these same values (and is it a
    plain request: no stream, no session, a non-empty last user message)?"""
    if not (1 <= len(req.model) <= MAX_ID_CHARS and 1 <= len(req.messages) <= MAX_MESSAGES):
        return False
    for m in req.messages:
        if m.role not in _ROLES:
            return False
        if m.content is not None and len(m.content) > MAX_TEXT_CHARS:
            return False
        if m.name is not None and len(m.name) > MAX_ID_CHARS:
            return False
        if m.role == "user" and not (m.content or "").strip():
            return False  # the route's 400 names the message
    return (
        not req.stream
        and req.stream_options is None
        and req.session_id is None
        and _opt_in(req.max_tokens, 1, MAX_TOKENS_LIMIT)
        and _opt_in(req.max_completion_tokens, 1, MAX_TOKENS_LIMIT)
        and _opt_in(req.temperature, 0.0, 2.0)
        and _opt_in(req.top_p, 0.0, 1.0)
        and (req.n is None or req.n == 1)
        and _opt_in(req.presence_penalty, -2.0, 2.0)
        and _opt_in(req.frequency_penalty, -2.0, 2.0)
        and (req.user is None or len(req.user) <= MAX_ID_CHARS)
    )


def _json_content_type(scope: Scope) -> bool:
    """Would FastAPI parse this body as JSON (no Content-Type, or application/json)?"""
    for name, value in scope["headers"]:
        if name == b"content-type":
            main = value.split(b";", 1)[0].strip().lower()
            return bool(main == b"application/json")
    return True


def _bearer_ok(scope: Scope, key: bytes) -> bool:
    """Does the request carry ``Authorization: Bearer <key>`` as HTTPBearer reads it?"""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            plain = token.isascii() and token == token.strip()  # as HTTPBearer would read it
            return bool(plain and scheme.lower() == b"bearer" and hmac.compare_digest(token, key))
    return False


# ==================================================================== errors
_STATUS_TYPE: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
}


class ApiError(Exception):
    """An error the server answers with an OpenAI error object and ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_body(status: int, message: str, code: str | None, param: str | None) -> bytes:
    message, param = _safe(message), None if param is None else _safe(param)
    code = None if code is None else _safe(code)
    detail = ErrorDetail(
        message=message, type=_STATUS_TYPE.get(status, "api_error"), param=param, code=code
    )
    return ErrorResponse(error=detail).model_dump_json().encode()


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An OpenAI-style error response."""
    return Response(
        _error_body(status, message, code, param),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _edge_status(exc: EdgeError) -> int:
    if isinstance(exc, InvalidInputError):
        return 400
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, CapacityError):
        return 429
    return 502


def _auth_headers(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"} if status == 401 else {}


_TYPE_TAG: Final = re.compile(r"[\[\-]|^(str|int|float|bool|list|dict|none)$")


def _validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    parts: list[str] = []
    param: str | None = None
    for err in errors[:5]:
        # Union members add type tags ("constrained-str", "list[...]") to the location.
        loc = [str(p) for p in err.get("loc", ()) if not _TYPE_TAG.search(str(p))]
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        if param is None and len(loc) > 1:
            param = where
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "invalid request: " + "; ".join(parts or ["malformed body"]), param


# ==================================================================== middleware
# A request the fast path answers itself: (status, JSON body, extra headers); None hands
# the request to FastAPI.
_FastReply = tuple[int, bytes, list[tuple[bytes, bytes]]]
FastHandler = Callable[[Scope, bytes], Awaitable[_FastReply | None]]


class _EdgeMiddleware:
    """Body-size limit, status counters, and a catch-all that never leaks a traceback.

    ``fast`` maps ``(method, path)`` to a handler that gets the whole body and either
    answers (the common, valid request) or returns None: the request then goes through
    FastAPI unchanged (its body replayed), which owns validation errors and every other
    case.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        counters: Counter[str],
        fast: Mapping[tuple[str, str], FastHandler] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.counters = counters
        self.fast = dict(fast or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counters = self.counters
        counters["requests"] += 1
        started = False

        async def send_counted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                counters[f"status_{message['status']}"] += 1
            await send(message)

        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        limit = self.max_body_bytes
        if length is not None and length > limit:
            await self._too_large(send_counted)
            return
        body: bytes | None = None  # the whole body, once read here
        if length is None and chunked:
            chunks = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # client went away
                    return
                chunks += message.get("body", b"")
                more = message.get("more_body", False)
                if len(chunks) > limit:
                    await self._too_large(send_counted)
                    return
            body = bytes(chunks)
            receive = _replay(body, receive)
        fast = self.fast.get((scope["method"], scope["path"])) if self.fast else None
        try:
            if fast is not None:
                if body is None:
                    data = bytearray()
                    while True:
                        message = await receive()
                        if message["type"] != "http.request":  # client went away
                            return
                        data += message.get("body", b"")
                        if not message.get("more_body", False):
                            break
                        if len(data) > limit:  # more than Content-Length announced
                            await self._too_large(send_counted)
                            return
                    body = bytes(data)
                    receive = _replay(body, receive)
                reply = await fast(scope, body)
                if reply is not None:
                    status, payload, extra = reply
                    await send_counted(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": [
                                (b"content-length", str(len(payload)).encode()),
                                (b"content-type", b"application/json"),
                                *extra,
                            ],
                        }
                    )
                    await send_counted({"type": "http.response.body", "body": payload})
                    return
            await self.app(scope, receive, send_counted)
        except Exception:
            counters["unhandled_errors"] += 1
            error_id = uuid.uuid4().hex[:12]
            logger.exception(
                "unhandled error %s in %s %s", error_id, scope["method"], scope["path"]
            )
            if not started:
                body_500 = _error_body(
                    500, f"internal server error (id {error_id}); see the server log", None, None
                )
                await send_counted(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body_500)).encode()),
                        ],
                    }
                )
                await send_counted({"type": "http.response.body", "body": body_500})

    async def _too_large(self, send: Send) -> None:
        body = _error_body(
            413,
            f"request body too large: the limit is {self.max_body_bytes} bytes",
            "request_too_large",
            None,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ==================================================================== helpers
def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` made strictly JSON-serialisable: numpy scalars/arrays become Python
    numbers/lists, NaN and infinities become ``None``, unknown objects their ``str``."""
    if _depth > 32:
        return None
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable(value.item(), _depth + 1)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, _depth + 1) for v in value]
    return str(value)


def _json(model: BaseModel, status: int = 200) -> Response:
    # Returning a Response skips FastAPI's second validation pass; the route's
    # response_model still documents the schema in OpenAPI.
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _ruvllm_info(resp: LLMResponse) -> RuvLLMInfo:
    return RuvLLMInfo.model_validate(_ruvllm_dict(resp))


def _ruvllm_dict(resp: LLMResponse) -> dict[str, Any]:
    """The ``ruvllm`` extension of a completion as plain JSON values (field order as
    :class:`RuvLLMInfo`); the fast path encodes it directly."""
    routing = resp.routing_info
    return {
        "request_id": str(resp.request_id),
        "session_id": None if resp.session_id is None else str(resp.session_id),
        "confidence": _finite(resp.confidence),
        "routing": {
            "model": str(routing.model),
            "context_size": int(routing.context_size),
            "confidence": _finite(routing.confidence),
            "fallback": bool(routing.fallback),
            "probabilities": {str(k): _finite(v) for k, v in routing.probabilities.items()},
            "forced": bool(getattr(routing, "forced", False)),
            "explored": bool(getattr(routing, "explored", False)),
        },
        "sources": [
            {
                "id": str(s.id),
                "text": str(s.text),
                "score": _finite(s.score),
                "metadata": jsonable(dict(s.metadata or {})),
            }
            for s in resp.sources
        ],
        "latency_ms": {str(k): _finite(v) for k, v in resp.latency_ms.items()},
    }


def _completion_json(resp: LLMResponse, created: int) -> bytes:
    """The ``chat.completion`` body: what ``ChatCompletion.model_dump_json()`` gives for
    this response (same fields, order and values), encoded by msgspec."""
    prompt = int(resp.usage.prompt_tokens)
    completion = int(resp.usage.completion_tokens)
    return _FAST_ENCODER.encode(
        {
            "id": f"chatcmpl-{resp.request_id}",
            "object": "chat.completion",
            "created": created,
            "model": str(resp.routing_info.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": str(resp.text)},
                    "finish_reason": _finish_reason(resp),
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "system_fingerprint": None,
            "ruvllm": _ruvllm_dict(resp),
        }
    )


def _usage(resp: LLMResponse) -> Usage:
    prompt = int(resp.usage.prompt_tokens)
    completion = int(resp.usage.completion_tokens)
    return Usage.model_construct(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _finish_reason(resp: LLMResponse) -> Literal["stop", "length"]:
    return "length" if resp.finish_reason == "length" else "stop"


def _sse(model: BaseModel) -> str:
    return f"data: {model.model_dump_json()}\n\n"


# ==================================================================== app
# Module level: FastAPI resolves the (string) annotations of route functions in this
# module's globals.
_BEARER = HTTPBearer(auto_error=False, description="The server's API key (--api-key).")


def create_app(
    llm: RuvLLM,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    run_in_thread: bool | None = None,
    title: str = "ruvLLM",
) -> FastAPI:
    """The OpenAI-compatible FastAPI app serving ``llm``.

    ``api_key``: when set, every route but ``/v1/health`` needs ``Authorization: Bearer
    <key>`` (compared in constant time). ``max_body_bytes``: larger bodies get 413 before
    they are read. ``run_in_thread``: run the orchestrator's blocking calls in the
    threadpool (needed for real backends and model embedders); ``False`` calls them on the
    event loop (about twice the requests/s when each call takes well under a millisecond,
    but one slow call stalls every connection). ``None`` (default): inline only for the
    ``mock`` backend with a ``hash-*`` embedder, the threadpool otherwise.
    """
    if max_body_bytes < 1:
        raise InvalidInputError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    if api_key is not None and not api_key:
        raise InvalidInputError("api_key must not be empty; pass None to disable the key check")
    if run_in_thread is None:
        run_in_thread = not (
            str(llm.backend.name) == "mock" and str(llm.embedder.name).startswith("hash-")
        )
    key_bytes = api_key.encode() if api_key is not None else None
    started_at = time.monotonic()
    counters: Counter[str] = Counter()

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if run_in_thread:
            return await run_in_threadpool(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    app = FastAPI(
        title=title,
        version="1.0",
        description="OpenAI-compatible API of a ruvLLM orchestrator (retrieval, learned "
        "routing, feedback). Errors use OpenAI's error object.",
        docs_url="/docs",
        redoc_url=None,
    )

    async def fast_chat(scope: Scope, body: bytes) -> _FastReply | None:
        """``POST /v1/chat/completions`` for a plain, valid request without FastAPI's
        per-request work (dependency solving, pydantic validation of the body and of the
        response, exception-handler dispatch): same answer, a fraction of the CPU. Every
        other request (stream, session, content parts, anything invalid, a missing key)
        returns None and takes the route below."""
        if key_bytes is not None and not _bearer_ok(scope, key_bytes):
            return None
        if not _json_content_type(scope):
            return None
        try:
            req = _FAST_DECODER.decode(body)
        except msgspec.MsgspecError:
            return None
        if not _fast_request_ok(req):
            return None
        try:
            messages = [
                ChatMessage("system" if m.role == "developer" else m.role, m.content or "")
                for m in req.messages
            ]
            resp = await call(
                llm.chat,
                messages,
                model=None if req.model == AUTO_MODEL else req.model,
                max_tokens=req.max_completion_tokens or req.max_tokens,
                temperature=req.temperature,
            )
        except EdgeError as exc:  # what on_edge_error answers on the route
            status = _edge_status(exc)
            if status >= 500:
                logger.warning("backend failure: %s: %s", type(exc).__name__, exc.message)
            headers = [(k.lower().encode(), v.encode()) for k, v in _auth_headers(status).items()]
            return status, _error_body(status, exc.message, exc.code, None), headers
        counters["chat_fast_path"] += 1
        return 200, _completion_json(resp, int(time.time())), []

    app.state.llm = llm
    app.state.counters = counters
    app.state.run_in_thread = run_in_thread
    app.add_middleware(
        _EdgeMiddleware,
        max_body_bytes=max_body_bytes,
        counters=counters,
        fast={("POST", "/v1/chat/completions"): fast_chat},
    )

    # ------------------------------------------------------------ error handlers
    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status,
            exc.message,
            code=exc.code,
            param=exc.param,
            headers={**_auth_headers(exc.status), **exc.headers},
        )

    async def on_edge_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EdgeError)
        status = _edge_status(exc)
        if status >= 500:
            logger.warning("backend failure: %s: %s", type(exc).__name__, exc.message)
        return error_response(status, exc.message, code=exc.code, headers=_auth_headers(status))

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, param = _validation_message(exc.errors())
        return error_response(400, message, code="invalid_request", param=param)

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 404 and message == "Not Found":
            message = "no such route; see /openapi.json for the API"
        return error_response(status, message, code=code, headers=exc.headers)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(EdgeError, on_edge_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    # ------------------------------------------------------------ auth
    async def check_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        assert key_bytes is not None
        if credentials is None:
            raise ApiError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(credentials.credentials.encode(), key_bytes):
            raise ApiError(401, "invalid API key", code="invalid_api_key")

    auth = [Depends(check_key)] if key_bytes is not None else []
    err = {"model": ErrorResponse}
    common: dict[int | str, dict[str, Any]] = {400: err, 413: err, 500: err}
    if key_bytes is not None:
        common[401] = err

    # ------------------------------------------------------------ chat
    def to_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
        out = []
        for i, msg in enumerate(request.messages):
            role = "system" if msg.role == "developer" else msg.role
            text = msg.text()
            if role == "user" and not text.strip():
                raise ApiError(
                    400,
                    f"messages[{i}]: a user message needs non-empty text content",
                    code="invalid_request",
                    param=f"messages.{i}.content",
                )
            out.append(ChatMessage(role=role, content=text))
        return out

    def options(request: ChatCompletionRequest) -> dict[str, Any]:
        model = None if request.model == AUTO_MODEL else request.model
        max_tokens = request.max_completion_tokens or request.max_tokens
        return {"model": model, "max_tokens": max_tokens, "temperature": request.temperature}

    def completion(resp: LLMResponse) -> ChatCompletion:
        return ChatCompletion.model_construct(
            id=f"chatcmpl-{resp.request_id}",
            created=int(time.time()),
            model=str(resp.routing_info.model),
            choices=[
                Choice.model_construct(
                    index=0,
                    message=AssistantMessage.model_construct(content=str(resp.text)),
                    finish_reason=_finish_reason(resp),
                )
            ],
            usage=_usage(resp),
            ruvllm=_ruvllm_info(resp),
        )

    def session_query(request: ChatCompletionRequest, messages: list[ChatMessage]) -> LLMResponse:
        last = messages[-1]
        if last.role != "user":
            raise ApiError(
                400,
                "with session_id the last message must be the user's question",
                code="invalid_request",
                param="messages",
            )
        return llm.query(last.content, session_id=request.session_id, **options(request))

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={
            **common,
            404: err,
            429: err,
            502: err,
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "A chat.completion, or with stream=true server-sent "
                "chat.completion.chunk events ending in 'data: [DONE]'.",
            },
        },
        dependencies=auth,
        tags=["openai"],
    )
    async def chat_completions(request: ChatCompletionRequest) -> Response:
        """Answer a chat (OpenAI ``chat.completions``)."""
        messages = to_messages(request)
        if request.stream:
            return await stream_chat(request, messages)
        if request.session_id is not None:
            resp = await call(session_query, request, messages)
        else:
            resp = await call(llm.chat, messages, **options(request))
        return _json(completion(resp))

    async def stream_chat(request: ChatCompletionRequest, messages: list[ChatMessage]) -> Response:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        created = int(time.time())
        deltas: Iterator[str]
        finish: Callable[[], LLMResponse]
        if request.session_id is not None:
            # Sessions have no streaming call in the orchestrator: answer, then send the
            # whole text as one delta.
            resp = await call(session_query, request, messages)
            request_id, model = str(resp.request_id), str(resp.routing_info.model)
            deltas, finish = iter([str(resp.text)]), lambda: resp
        else:
            start, deltas, finish = await call(llm.chat_stream, messages, **options(request))
            request_id, model = str(start.request_id), str(start.model)
        chunk_id = f"chatcmpl-{request_id}"
        counters["streams"] += 1

        def chunk(delta: ChunkDelta, **extra: Any) -> str:
            choice = ChunkChoice.model_construct(
                delta=delta, finish_reason=extra.pop("finish_reason", None)
            )
            return _sse(
                ChatCompletionChunk.model_construct(
                    id=chunk_id, created=created, model=model, choices=[choice], **extra
                )
            )

        async def events() -> AsyncIterator[str]:
            yield chunk(ChunkDelta.model_construct(role="assistant", content=""))
            try:
                if run_in_thread:
                    async for text in iterate_in_threadpool(deltas):
                        if text:
                            yield chunk(ChunkDelta.model_construct(content=text))
                else:
                    for text in deltas:
                        if text:
                            yield chunk(ChunkDelta.model_construct(content=text))
                resp = await call(finish)
            except EdgeError as exc:
                status = _edge_status(exc)
                logger.warning("stream %s failed: %s", request_id, exc.message)
                yield f"data: {_error_body(status, exc.message, exc.code, None).decode()}\n\n"
                return
            except Exception:
                logger.exception("stream %s failed", request_id)
                counters["unhandled_errors"] += 1
                body = _error_body(500, "internal server error; see the server log", None, None)
                yield f"data: {body.decode()}\n\n"
                return
            yield chunk(
                ChunkDelta.model_construct(),
                finish_reason=_finish_reason(resp),
                ruvllm=_ruvllm_info(resp),
            )
            if include_usage:
                yield _sse(
                    ChatCompletionChunk.model_construct(
                        id=chunk_id, created=created, model=model, choices=[], usage=_usage(resp)
                    )
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------ embeddings
    def count_tokens(text: str) -> int:
        try:
            return int(llm.backend.count_tokens(text))
        except Exception:  # a backend without a tokenizer: a word count will do
            return len(text.split())

    def embed(texts: list[str]) -> Any:
        return llm.embedder.embed_batch(texts)

    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingList,
        responses={**common, 429: err, 502: err},
        dependencies=auth,
        tags=["openai"],
    )
    async def embeddings(request: EmbeddingRequest) -> Response:
        """Embed text with the orchestrator's embedder (OpenAI ``embeddings``)."""
        embedder = llm.embedder
        name = str(embedder.name)
        if request.model not in (name, DEFAULT_EMBEDDING_MODEL):
            raise ApiError(
                400,
                f"unknown embedding model {request.model!r}; use {name!r} or "
                f"{DEFAULT_EMBEDDING_MODEL!r}",
                code="model_not_found",
                param="model",
            )
        if request.dimensions is not None and request.dimensions != int(embedder.dim):
            raise ApiError(
                400,
                f"dimensions={request.dimensions} is not supported: {name} embeds into "
                f"{embedder.dim} dimensions; omit the field",
                code="invalid_request",
                param="dimensions",
            )
        raw = request.input
        texts: list[str]
        if isinstance(raw, str):
            texts = [raw]
        elif all(isinstance(item, str) for item in raw):
            texts = [item for item in raw if isinstance(item, str)]
        else:
            raise ApiError(
                400,
                "token-id input is not supported; send a string or a list of strings",
                code="invalid_request",
                param="input",
            )
        if not texts:
            raise ApiError(
                400,
                "input is empty: send at least one string",
                code="invalid_request",
                param="input",
            )
        if len(texts) > MAX_EMBED_INPUTS:
            raise ApiError(
                400,
                f"at most {MAX_EMBED_INPUTS} inputs per request, got {len(texts)}",
                code="invalid_request",
                param="input",
            )
        for i, text in enumerate(texts):
            if not text.strip():
                raise ApiError(
                    400,
                    f"input[{i}] is empty; every input must contain text",
                    code="invalid_request",
                    param="input",
                )
        vectors = np.asarray(await call(embed, texts), dtype=np.float32)
        if vectors.shape[0] != len(texts) or not np.all(np.isfinite(vectors)):
            raise EdgeError(
                f"embedder {name} returned {vectors.shape} or non-finite values for "
                f"{len(texts)} inputs",
                code="embedder_failed",
            )
        data: list[Embedding] = []
        for i, vector in enumerate(vectors):
            value: list[float] | str
            if request.encoding_format == "base64":
                value = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            else:
                value = vector.tolist()
            data.append(Embedding.model_construct(index=i, embedding=value))
        tokens = sum(count_tokens(text) for text in texts)
        return _json(
            EmbeddingList.model_construct(
                data=data,
                model=name,
                usage=EmbeddingUsage.model_construct(prompt_tokens=tokens, total_tokens=tokens),
            )
        )

    # ------------------------------------------------------------ models
    def model_cards() -> list[ModelCard]:
        created = int(time.time() - (time.monotonic() - started_at))
        names = [AUTO_MODEL, *(str(m) for m in llm.models())]
        cards = [ModelCard(id=n, created=created, owned_by="ruvllm") for n in names]
        cards.append(ModelCard(id=str(llm.embedder.name), created=created, owned_by="ruvllm-embed"))
        return cards

    @app.get("/v1/models", response_model=ModelList, responses=common, dependencies=auth)
    async def list_models() -> Response:
        """The chat models (``auto`` plus the configured ones) and the embedder."""
        return _json(ModelList(data=model_cards()))

    @app.get(
        "/v1/models/{model_id}",
        response_model=ModelCard,
        responses={**common, 404: err},
        dependencies=auth,
    )
    async def get_model(model_id: Annotated[str, Path(max_length=MAX_ID_CHARS)]) -> Response:
        """One model by id."""
        for card in model_cards():
            if card.id == model_id:
                return _json(card)
        raise ApiError(404, f"no model {model_id!r}; see GET /v1/models", code="model_not_found")

    # ------------------------------------------------------------ ruvLLM extensions
    @app.post(
        "/v1/sessions",
        response_model=SessionOut,
        responses={**common, 429: err},
        dependencies=auth,
        tags=["ruvllm"],
    )
    async def new_session() -> Response:
        """Start a conversation; pass its id as ``session_id`` in chat requests."""
        session = await call(llm.new_session)
        return _json(SessionOut(id=str(session.id)))

    @app.post(
        "/v1/feedback",
        response_model=FeedbackAck,
        responses={**common, 404: err},
        dependencies=auth,
        tags=["ruvllm"],
    )
    async def feedback(request: FeedbackRequest) -> Response:
        """Rate an earlier response (``ruvllm.request_id``); the router learns from it."""
        if request.rating is None and request.task_success is None and request.correction is None:
            raise ApiError(
                400,
                "feedback needs at least one of rating (1-5), task_success or correction",
                code="invalid_request",
            )
        await call(
            llm.feedback,
            Feedback(
                request_id=request.request_id,
                rating=request.rating,
                task_success=request.task_success,
                correction=request.correction,
            ),
        )
        return _json(FeedbackAck(request_id=request.request_id))

    @app.get(
        "/v1/patterns",
        response_model=PatternList,
        responses=common,
        dependencies=auth,
        tags=["ruvllm"],
    )
    async def patterns(limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> Response:
        """What the orchestrator has learned (best first)."""
        found = await call(llm.get_patterns, limit)
        return _json(PatternList(data=[jsonable(dict(p)) for p in found]))

    @app.get(
        "/v1/stats", response_model=Stats, responses=common, dependencies=auth, tags=["ruvllm"]
    )
    async def stats() -> Response:
        """Orchestrator counters (queries, routing, feedback, memory) and server counters."""
        llm_stats = await call(llm.stats)
        server = {
            "uptime_s": round(time.monotonic() - started_at, 3),
            "max_body_bytes": max_body_bytes,
            "auth": key_bytes is not None,
            **dict(counters),
        }
        return _json(Stats(llm=jsonable(dict(llm_stats)), server=server))

    @app.get("/v1/health", response_model=Health, tags=["ruvllm"])
    async def health() -> Response:
        """Liveness and what is served; needs no API key."""
        return _json(
            Health(
                backend=str(llm.backend.name),
                embedder=str(llm.embedder.name),
                models=[str(m) for m in llm.models()],
                uptime_s=round(time.monotonic() - started_at, 3),
            )
        )

    # ------------------------------------------------------------ OpenAPI without 422s
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path_item in spec.get("paths", {}).values():
                for operation in path_item.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
