"""The durable LLM agent: a built-in task whose every model turn and tool call is a
checkpoint, with Anthropic and offline demo models, a tool registry, and a transcript
read model for the TUI and the CLI (no Textual here).

- ``register_agent(registry)`` makes workers know task ``agent`` (queue ``agents``);
  ``spawn_agent(conn, prompt, model=..., max_iterations=...)`` starts one.
- ``load_transcript(conn, queue, task_id)`` (or ``transcript_from_detail``) gives the
  conversation so far and the question it waits on; ``answer_question`` answers it.
- ``@tool(input_schema=...)`` adds a Python function as a tool; ``@host_file(path)``
  serves a function's answer as a read-only file to the code interpreter
  (``execute_python``, see ``interpreter.py`` and ``sandbox/``).
- The checkpoint layout and the ``ask_human`` event name are described in
  ``conversation.py``.
"""

from .conversation import AgentParamsError, AgentSpec, answer_event_name, answer_payload
from .models import (
    CLAUDE_MODELS,
    DEFAULT_CLAUDE_MODEL,
    DEMO_LABEL,
    DEMO_MODEL,
    ModelOption,
    default_model_name,
    has_api_key,
    model_label,
    model_options,
)
from .sandbox import host_file
from .task import (
    AGENT_QUEUE,
    AGENT_TASK,
    AgentFailure,
    agent_params,
    answer_question,
    queues_to_create,
    register_agent,
    spawn_agent,
)
from .tools import ToolRegistry, ToolResult, default_tools, tool
from .transcript import (
    Entry,
    PendingQuestion,
    Transcript,
    build_transcript,
    load_transcript,
    transcript_from_detail,
)

__all__ = [
    "AGENT_QUEUE",
    "AGENT_TASK",
    "CLAUDE_MODELS",
    "DEFAULT_CLAUDE_MODEL",
    "DEMO_LABEL",
    "DEMO_MODEL",
    "AgentFailure",
    "AgentParamsError",
    "AgentSpec",
    "Entry",
    "ModelOption",
    "PendingQuestion",
    "ToolRegistry",
    "ToolResult",
    "Transcript",
    "agent_params",
    "answer_event_name",
    "answer_payload",
    "answer_question",
    "build_transcript",
    "default_model_name",
    "default_tools",
    "has_api_key",
    "host_file",
    "load_transcript",
    "model_label",
    "model_options",
    "queues_to_create",
    "register_agent",
    "spawn_agent",
    "tool",
    "transcript_from_detail",
]
