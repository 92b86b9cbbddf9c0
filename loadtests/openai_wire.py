"""The OpenAI chat completions wire format, as far as ALMA's simulator endpoint speaks it."""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import BaseMessage, convert_to_messages
from pydantic import BaseModel, ConfigDict, Field, model_validator

FinishReason = Literal["stop", "length", "tool_calls"]


# --- Wire format: requests ---------------------------------------------------------------


class _Wire(BaseModel):
    """Base of the wire models: unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ContentPart(_Wire):
    """One part of a message's content; only text parts reach the model."""

    type: str
    text: str | None = None


class FunctionCall(_Wire):
    """The function a tool call invokes, with its arguments as a JSON string."""

    name: str
    arguments: str


class ToolCall(_Wire):
    """A tool call, as an assistant message carries it."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Wire):
    """One message of the prompt."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_messages_answer_a_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        return self

    @property
    def text(self) -> str:
        """The content as plain text, text parts joined."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""

    def as_langchain_dict(self) -> dict[str, Any]:
        """This message as a dict `convert_to_messages` accepts.

        Tool calls are given in LangChain's own shape, so arguments that are not a JSON
        object do not make the conversion fail.
        """
        converted: dict[str, Any] = {"role": self.role, "content": self.text}
        if self.name is not None:
            converted["name"] = self.name
        if self.tool_call_id is not None:
            converted["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            converted["tool_calls"] = [
                {
                    "name": call.function.name,
                    "args": parse_arguments(call.function.arguments),
                    "id": call.id,
                    "type": "tool_call",
                }
                for call in self.tool_calls
            ]
        return converted


class FunctionDefinition(_Wire):
    """A function the model may call; `parameters` is its JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None


class ToolDefinition(_Wire):
    """A tool offered to the model."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolChoiceFunction(_Wire):
    """The name of the function a named tool choice forces."""

    name: str


class NamedToolChoice(_Wire):
    """A tool choice that forces one named function."""

    type: Literal["function"] = "function"
    function: ToolChoiceFunction


class JsonSchemaFormat(_Wire):
    """The schema a `json_schema` response format asks the reply to follow."""

    name: str
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Wire):
    """The shape asked of the reply's content."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs 'json_schema'")
        return self


class StreamOptions(_Wire):
    """Options of a streamed answer."""

    include_usage: bool = False


class ChatCompletionRequest(_Wire):
    """The subset of `POST /v1/chat/completions` the simulator understands.

    `temperature` is accepted and ignored: the simulated model is deterministic.
    """

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def token_limit(self) -> int | None:
        """The most completion tokens the reply's content may take, if limited."""
        limits = [n for n in (self.max_tokens, self.max_completion_tokens) if n is not None]
        return min(limits) if limits else None

    def as_langchain(self) -> list[BaseMessage]:
        """The prompt as LangChain messages."""
        return convert_to_messages([message.as_langchain_dict() for message in self.messages])


# --- Wire format: responses --------------------------------------------------------------


class Usage(_Wire):
    """Tokens billed for one completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(_Wire):
    """The reply of a non-streamed completion."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(_Wire):
    """The one choice of a non-streamed completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(_Wire):
    """A `chat.completion` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class FunctionCallDelta(_Wire):
    """A piece of a streamed function call."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Wire):
    """A piece of a streamed tool call; the first piece carries id, type and name."""

    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta


class Delta(_Wire):
    """What one streamed chunk adds to the reply."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Wire):
    """The one choice of a streamed chunk."""

    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(_Wire):
    """A `chat.completion.chunk` object; the usage chunk has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(_Wire):
    """One served model, as `GET /v1/models` lists it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "alma-simulated"


class ModelList(_Wire):
    """The served models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(_Wire):
    """An OpenAI error: what went wrong, its kind, and a stable code."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(_Wire):
    """The body of every error response."""

    error: ErrorDetail


def parse_arguments(raw: str) -> dict[str, Any]:
    """Read a tool call's JSON arguments; anything else is kept whole under `arguments`."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}
