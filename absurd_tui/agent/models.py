"""Model providers for the agent: Anthropic's Messages API, and an offline demo.

A model answers one turn: given the conversation so far and the tools, it returns a
``Turn`` (the assistant message's content blocks, stop reason and token usage).

Errors are sorted for durability. ``TransientModelError`` (rate limit, overload, server
errors, network trouble) fails the current iteration step, so the engine retries the
task with backoff and the completed turns are not asked again. ``ModelRejectedError``
(bad key, invalid request, unknown model, no key at all) will fail the same way every
time, so the agent task stops for good with the reason.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .conversation import Turn, Usage

DEMO_MODEL = "demo"
DEMO_LABEL = "demo (offline)"
DEFAULT_CLAUDE_MODEL = "claude-haiku-4-5"
CLAUDE_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5")
"""Offered in pickers; any other model name the API accepts works too."""
API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
REQUEST_TIMEOUT_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 10.0

# HTTP statuses worth trying again later: timeout, conflict, rate limit; 5xx (incl. 529
# overloaded) is handled by its class.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


class ModelError(Exception):
    pass


class TransientModelError(ModelError):
    """Worth retrying later: the iteration fails and the task retries with backoff."""


class ModelRejectedError(ModelError):
    """Retrying cannot help: the agent task fails with this message."""


class Model(Protocol):
    name: str
    label: str

    def respond(
        self,
        *,
        system: str | None,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Turn: ...


def has_api_key(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get(API_KEY_ENV, "").strip())


def default_model_name(env: Mapping[str, str] | None = None) -> str:
    """Claude when a key is configured, else the offline demo."""
    return DEFAULT_CLAUDE_MODEL if has_api_key(env) else DEMO_MODEL


def is_demo(name: str | None) -> bool:
    return (name or "").strip().lower() == DEMO_MODEL


def model_label(name: str | None) -> str:
    """How a model is named on screen; the demo is never shown as anything but offline."""
    if is_demo(name):
        return DEMO_LABEL
    return name or "(model not chosen yet)"


@dataclass(frozen=True)
class ModelOption:
    """A model as a picker offers it."""

    name: str
    label: str
    available: bool
    note: str


def model_options(env: Mapping[str, str] | None = None) -> list[ModelOption]:
    """The models to offer, the default first; Claude is unavailable without a key."""
    keyed = has_api_key(env)
    demo = ModelOption(DEMO_MODEL, DEMO_LABEL, True, "scripted, no key and no network needed")
    claude = [
        ModelOption(
            name,
            name,
            keyed,
            "Anthropic API" if keyed else f"unavailable: {API_KEY_ENV} is not set",
        )
        for name in CLAUDE_MODELS
    ]
    return [*claude, demo] if keyed else [demo, *claude]


def make_model(name: str, env: Mapping[str, str] | None = None) -> Model:
    if is_demo(name):
        return DemoModel()
    return AnthropicModel(name, env=env)


class AnthropicModel:
    """Claude through the ``anthropic`` SDK, with its own retries turned off.

    Retrying is the engine's job: a failed call fails the iteration step, the task is
    retried with its backoff, and everything checkpointed before is kept.
    """

    def __init__(self, name: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.name = name
        self.label = name
        # Only ANTHROPIC_API_KEY: the SDK would otherwise also look at auth tokens,
        # profiles and config files, which a worker should not pick up silently.
        self._api_key = env.get(API_KEY_ENV, "").strip()
        self._base_url = env.get(BASE_URL_ENV, "").strip() or None
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=0,
                timeout=anthropic.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            )
        return self._client

    def respond(
        self,
        *,
        system: str | None,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Turn:
        if not self._api_key:
            raise ModelRejectedError(
                f"The model {self.name!r} needs an Anthropic API key, and {API_KEY_ENV} is not set "
                "in the environment of the worker running this task. Set it there and retry the "
                f"task, or use the offline model {DEMO_MODEL!r}."
            )
        import anthropic

        request: dict[str, Any] = {
            "model": self.name,
            "max_tokens": max_tokens,
            "messages": messages,
        }
        if tools:
            request["tools"] = tools
        if system:
            request["system"] = system
        try:
            message = self._get_client().messages.create(**request)
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from None
        except anthropic.APIConnectionError as exc:
            where = self._base_url or "api.anthropic.com"
            raise TransientModelError(
                f"Could not reach the Anthropic API at {where}: {self._scrub(str(exc))}"
            ) from None
        except anthropic.APIResponseValidationError as exc:
            raise TransientModelError(
                f"The Anthropic API returned an unexpected response: {self._scrub(str(exc))}"
            ) from None
        except anthropic.AnthropicError as exc:
            raise ModelRejectedError(
                f"The Anthropic client failed: {self._scrub(str(exc))}"
            ) from None
        usage = getattr(message, "usage", None)
        return Turn(
            content=tuple(_block_json(block) for block in message.content),
            stop_reason=message.stop_reason,
            usage=Usage(
                int(getattr(usage, "input_tokens", 0) or 0),
                int(getattr(usage, "output_tokens", 0) or 0),
            ),
            model=getattr(message, "model", None) or self.name,
        )

    def _status_error(self, exc: Any) -> ModelError:
        status = getattr(exc, "status_code", None)
        kind = getattr(exc, "type", None) or "error"
        detail = self._scrub(
            getattr(exc, "api_message", None) or getattr(exc, "message", None) or str(exc)
        )
        request_id = getattr(exc, "request_id", None)
        suffix = f" (request id {request_id})" if request_id else ""
        if status in _TRANSIENT_STATUSES or (isinstance(status, int) and status >= 500):
            return TransientModelError(f"Anthropic API error {status} {kind}: {detail}{suffix}")
        hint = ""
        if status == 401:
            hint = f" Check {API_KEY_ENV} on the worker."
        elif status == 403:
            hint = f" The key in {API_KEY_ENV} may lack access to this model or feature."
        elif status == 404:
            hint = f" Is {self.name!r} a model name your account can use?"
        return ModelRejectedError(
            f"Anthropic API rejected the request: {status} {kind}: {detail}{suffix}.{hint}"
        )

    def _scrub(self, text: str) -> str:
        """Never let the key reach a failure reason (stored in the database, shown in the UI)."""
        return text.replace(self._api_key, "***") if self._api_key else text


def _block_json(block: Any) -> dict[str, Any]:
    """A content block as JSON, in the shape the API accepts back in the next request."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return block.model_dump(mode="json", exclude_none=True)


class DemoModel:
    """A scripted, offline stand-in that exercises the agent's real machinery.

    It needs no key and no network and always answers the same way for the same
    conversation: it reads the time (a tool step), asks the person which city to look
    at (a durable ``ask_human`` wait), looks up that city's weather (a real HTTP tool,
    which reports an error when offline), takes a short durable ``sleep``, then writes
    a final answer from those results. It says plainly that it is not Claude.

    Asked for a picture of the IP address with the code interpreter on offer (the
    example ``CODE_PROMPT``), it plays that instead, all in the real sandbox: it reads
    ``/network/current-ip``, tries matplotlib's TkAgg backend (which a sandbox without
    a display does not have, so the call fails), draws the picture with Pillow into
    ``/output/ip_address.png``, and answers naming the file.
    """

    name = DEMO_MODEL
    label = DEMO_LABEL
    SLEEP_SECONDS = 2
    QUESTION = "Which city should I check the weather for?"
    FALLBACK_CITY = "Berlin"

    def respond(
        self,
        *,
        system: str | None,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Turn:
        turn = 1 + sum(1 for message in messages if message.get("role") == "assistant")
        results = _tool_results(messages)
        prompt = (
            messages[0]["content"]
            if messages and isinstance(messages[0].get("content"), str)
            else ""
        )

        tool_names = {str(spec.get("name")) for spec in tools}
        if "execute_python" in tool_names and wants_ip_picture(prompt):
            return self._code_turn(turn, results)

        def call(text: str, tool: str, tool_input: dict[str, Any]) -> Turn:
            block = {
                "type": "tool_use",
                "id": f"demo_tool_{turn}",
                "name": tool,
                "input": tool_input,
            }
            return Turn(({"type": "text", "text": text}, block), "tool_use", Usage(), DEMO_MODEL)

        if turn == 1:
            return call(
                "I am the offline demo model: a scripted stand-in, not Claude. "
                "I will show the durable machinery with a few tools. First, the time.",
                "current_time",
                {"timezone": "UTC"},
            )
        if turn == 2:
            return call(
                "Now I need something only you can tell me.",
                "ask_human",
                {"question": self.QUESTION},
            )
        if turn == 3:
            city = self._city(results.get("demo_tool_2"))
            return call(f"Looking up the weather in {city}.", "get_weather", {"location": city})
        if turn == 4:
            return call(
                "A short durable pause: the task leaves the worker and is woken by the clock.",
                "sleep",
                {"seconds": self.SLEEP_SECONDS, "reason": "demonstrating a durable sleep"},
            )
        return Turn(
            ({"type": "text", "text": self._answer(prompt, results)},),
            "end_turn",
            Usage(),
            DEMO_MODEL,
        )

    def _code_turn(self, turn: int, results: Mapping[str, tuple[str, bool]]) -> Turn:
        def code(text: str, source: str) -> Turn:
            block = {
                "type": "tool_use",
                "id": f"demo_tool_{turn}",
                "name": "execute_python",
                "input": {"code": source},
            }
            return Turn(({"type": "text", "text": text}, block), "tool_use", Usage(), DEMO_MODEL)

        read = results.get("demo_tool_1")
        ip = (_first_ip(read[0]) if read is not None and not read[1] else None) or (
            "IP unknown (offline)"
        )
        if turn == 1:
            return code(
                "I am the offline demo model: a scripted stand-in, not Claude, driving the "
                "real code interpreter. First, the address: the host serves it in /network.",
                'ip = open("/network/current-ip").read().strip()\nip',
            )
        if turn == 2:
            return code(
                f"The address is {ip}. Now a picture of it, with matplotlib.",
                MATPLOTLIB_CODE.format(ip=ip),
            )
        tried = results.get("demo_tool_2")
        if turn == 3 and tried is not None and tried[1]:
            return code(
                "matplotlib's TkAgg backend needs a display, which the sandbox does not "
                "have. I will draw the picture with Pillow instead.",
                PILLOW_CODE.format(ip=ip),
            )
        drawn = [text for key, (text, error) in results.items() if not error and "wrote" in text]
        written = re.search(r"wrote (/output/\S+) \(([\d,]+) bytes\)", drawn[-1]) if drawn else None
        if written:
            answer = (
                f"Your current IP address is {ip}. I drew it into {written.group(1)} "
                f"({written.group(2)} bytes): it is shown in the transcript, and "
                "`absurd-tui artifacts TASK --out DIR` saves it. "
                "(Scripted demo answer, not Claude; the code really ran in the sandbox.)"
            )
        else:
            answer = (
                f"I found the address ({ip}) but could not save a picture of it. "
                "(Scripted demo answer, not Claude.)"
            )
        return Turn(({"type": "text", "text": answer},), "end_turn", Usage(), DEMO_MODEL)

    def _city(self, answer: tuple[str, bool] | None) -> str:
        if answer is None or answer[1]:
            return self.FALLBACK_CITY
        text = answer[0]
        prefix = "The person answered:"
        if text.startswith(prefix):
            text = text[len(prefix) :]
        text = " ".join(text.split())
        return text[:80] or self.FALLBACK_CITY

    def _answer(self, prompt: str, results: Mapping[str, tuple[str, bool]]) -> str:
        time_text, time_error = results.get("demo_tool_1", ("not checked", True))
        city = self._city(results.get("demo_tool_2"))
        weather_text, weather_error = results.get("demo_tool_3", ("not checked", True))
        asked = results.get("demo_tool_2")
        lines = [
            "Demo answer from the offline scripted model (not Claude; no AI was called).",
            f"Your prompt was: {prompt}",
            f"- Time check: {time_text}" + (" (the tool reported an error)" if time_error else ""),
        ]
        if asked is None or asked[1]:
            lines.append(f"- You did not answer my question, so I used {city}.")
        else:
            lines.append(f"- You asked for the weather in {city}.")
        if weather_error:
            lines.append(
                f"- The weather lookup failed, which I can report but not fix: {weather_text}"
            )
        else:
            lines.append(f"- Weather: {weather_text}")
        lines.append(f"- I then slept durably for {self.SLEEP_SECONDS} seconds.")
        lines.append(
            "Each step above is a checkpoint: a crash at any point resumes here without redoing them."
        )
        return "\n".join(lines)


CODE_PROMPT = "Figure out the current ip address and make me a picture of it"
"""The code interpreter's example, which the demo model plays end to end."""


def _first_ip(text: str) -> str | None:
    for token in re.findall(r"[0-9A-Fa-f:.]{2,}", text):
        try:
            return str(ipaddress.ip_address(token.strip(".:")))
        except ValueError:
            continue
    return None


MATPLOTLIB_CODE = """import matplotlib
matplotlib.use("TkAgg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4, 1.5))
ax.text(0.5, 0.5, "{ip}", ha="center", va="center", fontsize=28)
ax.axis("off")
fig.savefig("/output/ip_address.png")
"""

PILLOW_CODE = """from PIL import Image, ImageDraw, ImageFont

ip = "{ip}"
font = ImageFont.load_default()
left, top, right, bottom = font.getbbox(ip)
small = Image.new("RGB", (right + 8, bottom + 8), "#1e3a5f")
ImageDraw.Draw(small).text((4, 4), ip, fill="#ffd166", font=font)
big = small.resize((small.width * 8, small.height * 8), Image.NEAREST)
picture = Image.new("RGB", (big.width + 40, big.height + 40), "#0b1d33")
picture.paste(big, (20, 20))
picture.save("/output/ip_address.png")
print(f"saved a {{picture.width}}x{{picture.height}} picture of {{ip}}")
"""


def wants_ip_picture(prompt: str) -> bool:
    """Whether a prompt asks for the code interpreter's example (an IP address, drawn)."""
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    return "ip" in words and bool(words & {"picture", "image", "png", "draw", "drawing"})


def _tool_results(messages: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for message in messages:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_result":
                text = block.get("content")
                found[str(block.get("tool_use_id"))] = (
                    text if isinstance(text, str) else str(text),
                    bool(block.get("is_error")),
                )
    return found
