"""What an AppWorld agent sees and sends: the system prompt, the ``appworld`` tool, action parsing, observations.

Pure functions, standard library only (tested without the engine). An action is the code of an assistant
message: OpenAI ``tool_calls`` (the first named ``appworld``), else a ``<tool_call>`` JSON block in the
text, else the first fenced python block. Anything else is ``InvalidAction`` naming what is accepted.
"""

from __future__ import annotations

import re
from typing import Any

from trainbox_server.envs.base import Message
from trainbox_server.envs.messages import (
    MessageFormatError,
    content_text,
    json_object,
    tool_call_blocks,
    tool_call_function,
    tool_calls,
)
from trainbox_server.errors import InvalidAction

APPWORLD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "appworld",
        "description": "Run Python code in your AppWorld REPL session and return what it printed.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python code to execute."}},
            "required": ["code"],
        },
    },
}
ACCEPTED_ACTIONS = (
    "a fenced python code block (```python ... ```), "
    'a tool call named "appworld" with a "code" argument (OpenAI tool_calls), '
    'or <tool_call>{"name": "appworld", "arguments": {"code": "..."}}</tool_call>'
)

SYSTEM_PROMPT = """\
You are an autonomous assistant. Your supervisor gives you a task to do with their apps (Gmail, \
Spotify, Venmo, Simple Note, Todoist, Splitwise, Amazon, Phone, File System), which you operate \
through their APIs in a Python REPL, on your own, without asking anyone anything.

How to act
- Every reply of yours must contain one Python code block, fenced as ```python ... ```. It is run and \
you get back what it printed. Only the first block of a reply runs. (Models with tool calling may \
instead call the `appworld` tool with a `code` argument.)
- Variables persist from one block to the next. Write small steps and check results before any \
change you cannot undo.
- Call APIs as `apis.<app>.<api>(...)`. Discover them with:
    print(apis.api_docs.show_app_descriptions())
    print(apis.api_docs.show_api_descriptions(app_name='supervisor'))
    print(apis.api_docs.show_api_doc(app_name='supervisor', api_name='show_account_passwords'))
- Your supervisor's account passwords, addresses and payment cards are in the `supervisor` app; log in \
to an app with its `login` API and pass the access token to the APIs that need it.
- APIs that return lists are paged: loop over `page_index` until a page comes back empty.
- Only the standard library is available; the file system, network and processes are off limits \
(a "file system" in a task means the File System app).
- When the task is done, call `apis.supervisor.complete_task()`. If the task asks for information, \
pass it as a short answer, e.g. `apis.supervisor.complete_task(answer=10)`. If you cannot do the \
task, call `apis.supervisor.complete_task(status="fail")`."""


def extract_code(message: Message) -> tuple[str, str | None]:
    """The code to run for an assistant message, and the tool call id it answers (None for text).

    Order: OpenAI ``tool_calls`` (the first named ``appworld``), a ``<tool_call>`` JSON block in the
    text, the first fenced python block (an unclosed last block counts: generation may stop at the fence).
    """
    if not isinstance(message, dict):
        raise InvalidAction(f"the action must be a chat message (a JSON object); accepted: {ACCEPTED_ACTIONS}")
    try:
        calls = tool_calls(message)
        if calls:
            return _from_openai_tool_calls(calls)
        content = content_text(message.get("content"), "\n") or ""
    except MessageFormatError as exc:
        raise InvalidAction(f"{exc}; accepted: {ACCEPTED_ACTIONS}") from None
    hermes = tool_call_blocks(content)
    if hermes:
        call = _json_object(hermes[0], "the <tool_call> block")
        return _code_argument(call.get("name"), call.get("arguments")), None
    block = re.search(r"```[ \t]*(?:python3?|py|ipython)?[ \t]*\n(.*?)```", content, re.DOTALL)
    if block is None:
        block = re.search(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*)$", content, re.DOTALL)
    if block is None or not block.group(1).strip():
        raise InvalidAction(f"the message has no code to run; accepted: {ACCEPTED_ACTIONS}")
    return block.group(1), None


def _from_openai_tool_calls(calls: list[Any]) -> tuple[str, str | None]:
    names = []
    for call in calls:
        function = tool_call_function(call)
        if function is None:
            raise InvalidAction(f"a tool call lacks its function object; accepted: {ACCEPTED_ACTIONS}")
        names.append(function.get("name"))
        if function.get("name") == "appworld":
            return _code_argument("appworld", function.get("arguments")), call.get("id")
    raise InvalidAction(f"no tool call named 'appworld' (got {names}); accepted: {ACCEPTED_ACTIONS}")


def _code_argument(name: Any, arguments: Any) -> str:
    if name != "appworld":
        raise InvalidAction(f"unknown tool {name!r}: the only tool is 'appworld'; accepted: {ACCEPTED_ACTIONS}")
    if isinstance(arguments, str):
        arguments = _json_object(arguments, "the appworld tool call's arguments")
    code = arguments.get("code") if isinstance(arguments, dict) else None
    if not isinstance(code, str) or not code.strip():
        raise InvalidAction('the appworld tool call needs a non-empty string argument "code"')
    return code


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        return json_object(text)
    except MessageFormatError as exc:
        raise InvalidAction(f"{what} is {exc}; accepted: {ACCEPTED_ACTIONS}") from None


def user_message(supervisor: dict[str, Any], instruction: str) -> str:
    return (
        f"My name is {supervisor['first_name']} {supervisor['last_name']}. My personal email is "
        f"{supervisor['email']} and my phone number is {supervisor['phone_number']}.\n"
        f"Task: {instruction}"
    )


def observation(output: str, tool_call_id: str | None) -> Message:
    if tool_call_id is not None:
        return {"role": "tool", "tool_call_id": tool_call_id, "name": "appworld", "content": output}
    return {"role": "user", "content": f"Output:\n```\n{output.rstrip()}\n```"}
