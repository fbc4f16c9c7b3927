"""Value types shared by the ruvLLM modules and the HTTP server."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ruvector_edge.errors import EdgeError, InvalidInputError

__all__ = [
    "ROLES",
    "BackendError",
    "BackendTimeoutError",
    "ChatMessage",
    "Feedback",
    "Generation",
    "Response",
    "RoutingInfo",
    "Source",
    "StreamStart",
    "TokenUsage",
]

ROLES = ("system", "user", "assistant")


class BackendError(EdgeError):
    """An inference backend failed (unreachable server, bad reply, model error)."""

    code = "backend_error"


class BackendTimeoutError(BackendError, TimeoutError):
    """An inference backend did not answer within its timeout (after retries)."""

    code = "backend_timeout"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInputError(
                f"message role must be one of {', '.join(ROLES)}, got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise InvalidInputError(
                f"message content must be a str, got {type(self.content).__name__}"
            )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens consumed by one request (as counted by the backend's tokenizer)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class RoutingInfo:
    """What the router decided for one request.

    ``confidence`` is the calibrated probability that ``model`` is the best configured
    model for the query; ``fallback`` is True when the router was unsure and the
    configured fallback model was used instead; ``probabilities`` covers every model.
    """

    model: str
    context_size: int
    confidence: float
    fallback: bool
    probabilities: dict[str, float]
    forced: bool = False
    explored: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """A retrieved memory entry that went into the prompt."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Generation:
    """What a backend returns for one prompt."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" | "length"
    model: str = ""


@dataclass(frozen=True, slots=True)
class StreamStart:
    """Known before a streamed generation starts."""

    request_id: str
    model: str


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one query, with routing, sources, latency breakdown and usage."""

    request_id: str
    text: str
    routing_info: RoutingInfo
    confidence: float
    sources: list[Source]
    latency_ms: dict[str, float]  # "embed", "retrieve", "route", "generate", "total"
    usage: TokenUsage
    session_id: str | None
    finish_reason: str
    backend: str = ""
    created: float = field(default=0.0)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A user's verdict on one response: a 1-5 rating, task success, and/or a correction.

    At least one of the three must be given. A correction means the answer was wrong;
    the corrected text is written back to memory as a good Q/A pair.
    """

    request_id: str
    rating: int | None = None
    task_success: bool | None = None
    correction: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise InvalidInputError("feedback needs the request_id of a response")
        if self.rating is not None and (
            isinstance(self.rating, bool) or not isinstance(self.rating, int)
        ):
            raise InvalidInputError(f"rating must be an int 1..5, got {self.rating!r}")
        if self.rating is not None and not 1 <= self.rating <= 5:
            raise InvalidInputError(f"rating must be in 1..5, got {self.rating}")
        if self.task_success is not None and not isinstance(self.task_success, bool):
            raise InvalidInputError(f"task_success must be a bool, got {self.task_success!r}")
        if self.correction is not None and (
            not isinstance(self.correction, str) or not self.correction.strip()
        ):
            raise InvalidInputError("correction must be a non-empty str when given")
        if self.rating is None and self.task_success is None and self.correction is None:
            raise InvalidInputError(
                "feedback is empty: give a rating (1-5), task_success or a correction"
            )

    @property
    def reward(self) -> float:
        """The feedback as one number in [0, 1] (mean of the signals given).

        rating r -> (r - 1) / 4; task_success -> 1 or 0; a correction -> 0.
        """
        parts: list[float] = []
        if self.rating is not None:
            parts.append((self.rating - 1) / 4.0)
        if self.task_success is not None:
            parts.append(1.0 if self.task_success else 0.0)
        if self.correction is not None:
            parts.append(0.0)
        value = sum(parts) / len(parts)
        return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
