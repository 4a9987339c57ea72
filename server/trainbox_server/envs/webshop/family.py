"""The WebShop family's adapter: episodes over one catalogue and one Lucene index per worker process."""

from __future__ import annotations

import copy
import gc
import json
import os
import re
import sys
from typing import Any

from trainbox_server.envs.base import Created, Evaluation, Message, StepResult
from trainbox_server.envs.messages import MessageFormatError, content_text, tool_call_function, tool_calls
from trainbox_server.envs.webshop import catalogue as data
from trainbox_server.envs.webshop import pages
from trainbox_server.envs.webshop.pages import Session
from trainbox_server.errors import EpisodeOver, InvalidAction, InvalidRequest, TrainboxError

WEBSHOP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "webshop",
        "description": "Act on the WebShop page: search[keywords] or click[value].",
        "parameters": {
            "type": "object",
            "properties": {"action": {"type": "string", "description": "search[...] or click[...]"}},
            "required": ["action"],
        },
    },
}
SYSTEM_PROMPT = """\
You are shopping on WebShop for the item the instruction describes. Every reply of yours is one action:
- search[keywords] searches the shop (works on every page);
- click[value] clicks a button, a product id or an option shown on the page, e.g. click[< Prev], \
click[B07XYZ1234], click[large], click[Buy Now].
Pages are shown as text, their parts separated by [SEP]. Choose the product's options before you click \
Buy Now; buying ends the episode. (Models with tool calling may instead call the `webshop` tool with an \
`action` argument.)"""
# A reply that is more than the action: its last line that is an action (ReAct's "Action: search[...]").
_ACTION_LINE = re.compile(r"^\s*(?:action\s*:\s*)?((?:search|click)\[.*\])\s*$", re.IGNORECASE | re.MULTILINE)


class Shared:
    """What one process loads once and every instance reads: the catalogue and the search index."""

    def __init__(self) -> None:
        from trainbox_server.envs.webshop.search import LuceneIndex

        root = data.data_root()
        self.catalogue = data.load(root)
        self.index = LuceneIndex(os.path.join(root, data.INDEX_DIR))


class WebShopFamily:
    name = "webshop"
    max_instances_per_process = 100_000

    def __init__(self) -> None:
        self._shared: Shared | None = None

    @property
    def shared(self) -> Shared:
        if self._shared is None:
            self._shared = Shared()
        return self._shared

    def warm(self) -> None:
        """Load the catalogue, start the JVM and open the index, load the reward's models; then freeze the lot
        out of the collector's way. Missing data is not fatal here: creates then say which command installs it."""
        from trainbox_server.envs.webshop import reward

        try:
            shared = self.shared
            shared.index.search("warm up")
        except TrainboxError as exc:
            print(f"webshop: {exc}", file=sys.stderr)
        reward.warm()
        gc.collect()
        gc.freeze()

    def task_ids(self, split: str) -> list[str]:
        return self.shared.catalogue.split(split)

    def create(self, task_id: str, params: dict[str, Any]) -> tuple[Created, WebShopInstance]:
        shared = self.shared
        index, goal = shared.catalogue.goal(task_id)
        instance = WebShopInstance(shared, index, goal, params)
        observation = instance.observation()
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": observation}]
        info = {
            "task_id": str(index),
            "instruction": goal["instruction_text"],
            "observation": observation,
            "available_actions": instance.available_actions(),
            "tools": [WEBSHOP_TOOL],
        }
        return Created(messages, info), instance


def _bool_param(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"param {key!r} must be true or false, got {value!r}")
    return value


def extract_action(message: Message) -> tuple[str, str | None]:
    """The action text of an assistant message, and the tool call id it answers (None for text)."""
    if not isinstance(message, dict):
        raise InvalidAction(
            "the action must be a chat message (a JSON object) whose content is search[...] or click[...]"
        )
    try:
        calls = tool_calls(message)
    except MessageFormatError as exc:
        raise InvalidAction(f"{exc}; the action is search[...] or click[...]") from None
    for call in calls:
        function = tool_call_function(call)
        if function is not None and function.get("name") == "webshop":
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {"action": arguments}
            action = arguments.get("action") if isinstance(arguments, dict) else None
            return (action if isinstance(action, str) else ""), call.get("id")
    try:
        text = (content_text(message.get("content"), "\n") or "").strip()
    except MessageFormatError as exc:
        raise InvalidAction(f"{exc}; the action is search[...] or click[...]") from None
    if pages.parse_action(text)[1] is not None or "\n" not in text:
        return text, None
    lines = _ACTION_LINE.findall(text)
    return (lines[-1] if lines else text), None


class WebShopInstance:
    """One shopping episode: the session of the original's simulated server, for one goal."""

    __slots__ = ("done", "evaluation", "goal", "goal_index", "session", "shared", "show_attrs", "sparse", "steps")

    def __init__(self, shared: Shared, goal_index: int, goal: dict[str, Any], params: dict[str, Any]) -> None:
        self.shared = shared
        self.goal_index = goal_index
        self.goal = goal
        self.sparse = _bool_param(params, "sparse", False)
        self.show_attrs = _bool_param(params, "show_attrs", False)
        self.session = Session()
        self.done = False
        self.evaluation: dict[str, Any] | None = None
        self.steps = 0

    def observation(self) -> str:
        reward = self.evaluation["reward"] if self.evaluation else None
        products = self.shared.catalogue.products
        return pages.text(self.session, self.goal["instruction_text"], products, self.show_attrs, reward)

    def available_actions(self) -> dict[str, Any]:
        found = pages.clickables(self.session, self.shared.catalogue.products, self.show_attrs)
        return {"has_search_bar": self.session.page == "index", "clickables": list(found)}

    def step(self, message: Message) -> StepResult:
        if self.done:
            raise EpisodeOver("this episode ended with Buy Now; evaluate or close it")
        action, tool_call_id = extract_action(message)
        self.steps += 1
        problem = self._act(action)
        info: dict[str, Any] = {"page": self.session.page, "valid": problem is None, "action": action}
        reward = 0.0
        if self.done and self.evaluation is not None:
            reward = self._reward(self.sparse)
            info["evaluation"] = self.evaluate({}).details
        else:
            info["available_actions"] = self.available_actions()
        if problem is not None:
            info["invalid_action"] = problem
        content = self.observation()
        if tool_call_id is not None:
            reply: Message = {"role": "tool", "tool_call_id": tool_call_id, "name": "webshop", "content": content}
        else:
            reply = {"role": "user", "content": content}
        return StepResult([reply], reward, self.done, info)

    def _act(self, action: str) -> str | None:
        """Apply the action (the original's rules); the reason it is invalid, or None."""
        name, arg = pages.parse_action(action)
        arg = arg.lower() if arg is not None else None
        session = self.session
        if name == "search" and arg:
            self._search(arg.split(" "))
            return None
        found = pages.clickables(session, self.shared.catalogue.products, self.show_attrs)
        if name == "click" and arg is not None and arg in found and arg != "search":
            self._click(arg, found[arg])
            return None
        valid = "search[<keywords>]" + "".join(f", click[{c}]" for c in found if c != "search")
        return f"{action[:200]!r} is not a valid action on this page (nothing happened); valid: {valid}"

    def _search(self, keywords: list[str], page_number: int = 1) -> None:
        session = self.session
        session.page, session.keywords, session.page_number = "search_results", keywords, page_number
        session.asin, session.options = None, {}
        session.results = self._results(keywords)

    def _results(self, keywords: list[str]) -> list[str]:
        """The original's ``get_top_n_product_from_keywords``, its debug prefixes included."""
        catalogue = self.shared.catalogue
        head, rest = keywords[0], " ".join(keywords[1:]).strip()
        if head == "<r>":
            import random

            asins = list(catalogue.products)
            return random.Random(f"{self.goal_index}:{self.steps}").sample(asins, k=min(50, len(asins)))
        if head == "<a>":
            return [a for a in catalogue.products if a in catalogue.attribute_to_asins.get(rest, ())]
        if head == "<c>":
            category = keywords[1].strip() if len(keywords) > 1 else ""
            return [a for a, p in catalogue.products.items() if p.get("category") == category]
        if head == "<q>":
            return [a for a, p in catalogue.products.items() if p["query"] == rest]
        return [asin for asin in self.shared.index.search(" ".join(keywords)) if asin in catalogue.products]

    def _click(self, clicked: str, kind: str) -> None:
        session = self.session
        if clicked == pages.END_BUTTON:
            self._buy()
        elif clicked == pages.BACK_TO_SEARCH:
            self.session = Session()
        elif clicked == pages.NEXT_PAGE and session.page == "search_results":
            self._search(session.keywords or [""], session.page_number + 1)
        elif clicked == pages.PREV_PAGE and session.page == "search_results":
            self._search(session.keywords or [""], session.page_number - 1)
        elif clicked == pages.PREV_PAGE and session.page == "item_sub_page":
            session.page = "item_page"
        elif clicked == pages.PREV_PAGE and session.page == "item_page":
            self._search(session.keywords or [""], session.page_number)
        elif clicked in pages.SUB_PAGES:
            session.page, session.sub_page = "item_sub_page", pages.SUB_PAGES[clicked]
        else:
            if kind == "product":
                session.asin = clicked.upper()
                session.asins.add(session.asin)
            elif kind != "button":
                session.options[kind] = clicked
            session.page = "item_page"

    def _buy(self) -> None:
        from trainbox_server.envs.webshop.reward import reward

        catalogue = self.shared.catalogue
        asin = self.session.asin or ""
        details = reward(catalogue.products[asin], self.goal, catalogue.prices[asin], self.session.options)
        details["purchased"] = {"asin": asin, "options": dict(self.session.options)}
        details["goal"] = {
            "asin": self.goal["asin"],
            "options": self.goal["goal_options"],
            "attributes": self.goal["attributes"],
            "price_upper": self.goal["price_upper"],
        }
        self.evaluation = details
        self.session.page = "done"
        self.done = True

    def _reward(self, sparse: bool) -> float:
        if self.evaluation is None:
            return 0.0
        dense = float(self.evaluation["reward"])
        return (1.0 if dense >= 1.0 else 0.0) if sparse else dense

    def evaluate(self, params: dict[str, Any]) -> Evaluation:
        sparse = _bool_param(params, "sparse", self.sparse)
        if self.evaluation is None:
            details = {"purchased": None, "failed": ["not purchased"], "sparse": 0.0, "dense": 0.0, "steps": self.steps}
            return Evaluation(0.0, {**details, "mode": "sparse" if sparse else "dense"})
        details = {**self.evaluation, "sparse": self._reward(True), "dense": self._reward(False), "steps": self.steps}
        return Evaluation(self._reward(sparse), {**details, "mode": "sparse" if sparse else "dense"})

    def fork(self) -> WebShopInstance:
        """An independent copy (the catalogue, the index and the goal are shared: never written)."""
        memo = {id(self.shared): self.shared, id(self.goal): self.goal}
        return copy.deepcopy(self, memo)

    def close(self) -> None:
        self.session = Session()


def make_family() -> WebShopFamily:
    return WebShopFamily()
