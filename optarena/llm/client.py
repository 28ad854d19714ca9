"""A chat-completion client for any OpenAI-compatible endpoint, with a disk cache of replies.

* :meth:`LLMClient.connect` fails fast: a missing API key, an unreachable endpoint or a model the
  endpoint does not serve raises :class:`LLMUnavailable` with the reason, before any search starts.
  Nothing connects at import or construction time.
* :meth:`LLMClient.complete` asks for JSON matching a schema: OpenAI's ``json_schema``
  response format, else llama.cpp's ``json_object`` with a ``schema``, else plain text (the
  caller parses it); a format the endpoint rejects is not asked for again. Timeouts and retries
  with exponential backoff are the ``openai`` SDK's.
* Every reply is stored under the SHA-256 of its request (model, messages, sampling settings,
  schema), so a run can be replayed without the endpoint (``replay_only``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optarena.envs.host import cache_root, replacing


def default_llm_cache() -> Path:
    return cache_root() / "llm"


class LLMConfig(BaseModel):
    """An OpenAI-compatible endpoint and how to sample from it (YAML: ``llm:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("http://127.0.0.1:8080/v1", description="the endpoint's /v1 URL")
    model: str = Field("qwen2.5-coder-0.5b", description="model name as the endpoint serves it")
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key; none: a local server")
    timeout_s: float = Field(120.0, gt=0, description="per request")
    max_retries: int = Field(2, ge=0, description="retries with exponential backoff (SDK)")
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(96, ge=1, description="completion tokens per request")
    response_format: Literal["auto", "json_schema", "json_object", "none"] = Field(
        "auto", description="how to ask for JSON with a schema: OpenAI's json_schema, llama.cpp's "
        "json_object with a schema, none (parse text); auto: the first the endpoint accepts")
    prompt_price_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    completion_price_per_mtok: float = Field(0.0, ge=0,
                                             description="USD per million completion tokens")
    cache_dir: Path | None = Field(default_factory=default_llm_cache,
                                   description="replies by request hash; none: no cache")
    replay_only: bool = Field(False, description="answer from the cache only, never connect")


class LLMUnavailable(RuntimeError):
    """The endpoint cannot be used (no key, unreachable, model not served, not cached)."""


class LLMRequestFailed(RuntimeError):
    """One request failed after the SDK's retries (the search counts a fallback and goes on)."""


class _FormatRejected(Exception):
    """The endpoint rejected the response format asked for."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached: bool


class LLMClient:
    """Chat completions with a JSON schema, a reply cache and usage numbers."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._client: Any = None
        self._formats: list[str | None] = (
            ["json_schema", "json_object", None] if config.response_format == "auto"
            else [None if config.response_format == "none" else config.response_format])

    def connect(self) -> None:
        """Check the key, the endpoint and the model; raise :class:`LLMUnavailable` if unusable."""
        import openai

        config = self.config
        if config.replay_only:
            return
        key = "not-needed"
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env, "")
            if not key:
                raise LLMUnavailable(f"the API key variable ${config.api_key_env} is not set")
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key,
                                     timeout=config.timeout_s, max_retries=config.max_retries)
        try:
            served = [m.id for m in self._client.with_options(max_retries=0, timeout=10).models.list()]
        except openai.APIConnectionError as err:
            raise LLMUnavailable(f"cannot reach the LLM endpoint {config.base_url} ({err}); "
                                 "is the server running? (`optarena llm serve`)") from err
        except openai.AuthenticationError as err:
            raise LLMUnavailable(f"{config.base_url} rejected the API key in "
                                 f"${config.api_key_env}: {err}") from err
        except openai.APIStatusError:
            served = []  # no /models route: the first completion will tell
        if served and config.model not in served:
            raise LLMUnavailable(f"{config.base_url} does not serve {config.model!r}; "
                                 f"it serves {', '.join(served)}")

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None,
                 seed: int | None = None) -> Completion:
        """One chat completion (from the cache when this exact request was made before)."""
        while True:
            response_format = self._formats[0] if schema is not None else None
            try:
                return self._cached_request(messages, schema, response_format, seed)
            except _FormatRejected:
                self._formats.pop(0)  # the endpoint does not take it: ask the next way

    def _cached_request(self, messages: list[dict[str, str]], schema: dict[str, Any] | None,
                        response_format: str | None, seed: int | None) -> Completion:
        import openai

        config = self.config
        request: dict[str, Any] = {
            "model": config.model, "messages": messages, "temperature": config.temperature,
            "max_tokens": config.max_tokens, "seed": seed,
        }
        if response_format == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "proposal", "schema": schema, "strict": True},
            }
        elif response_format == "json_object":
            request["response_format"] = {"type": "json_object", "schema": schema}
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        path = config.cache_dir / digest[:2] / f"{digest}.json" if config.cache_dir else None
        if path is not None and path.exists():
            stored = json.loads(path.read_text())
            return Completion(stored["text"], stored["prompt_tokens"], stored["completion_tokens"],
                              stored["seconds"], cached=True)
        if self._client is None:
            raise LLMUnavailable("no cached reply for this prompt and no endpoint "
                                 "(replay_only, or connect() was not called)")
        start = time.perf_counter()
        try:
            response = self._client.chat.completions.create(**request)
        except openai.APIStatusError as err:
            if response_format is not None and "response_format" in str(err) \
                    and len(self._formats) > 1:
                raise _FormatRejected from err
            raise LLMRequestFailed(f"{config.base_url}: {err}") from err
        except openai.APIError as err:
            raise LLMRequestFailed(f"{config.base_url}: {err}") from err
        seconds = time.perf_counter() - start
        usage = response.usage
        completion = Completion(response.choices[0].message.content or "",
                                usage.prompt_tokens if usage else 0,
                                usage.completion_tokens if usage else 0, seconds, cached=False)
        if path is not None:
            with replacing(path) as partial:
                partial.write_text(json.dumps({"request": request, "text": completion.text,
                                               "prompt_tokens": completion.prompt_tokens,
                                               "completion_tokens": completion.completion_tokens,
                                               "seconds": seconds}))
        return completion

    def cost_usd(self, completion: Completion) -> float:
        config = self.config
        return (completion.prompt_tokens * config.prompt_price_per_mtok
                + completion.completion_tokens * config.completion_price_per_mtok) / 1e6
