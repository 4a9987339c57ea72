"""WebShop's oracle for the generated catalogue: the first test goal and the actions that buy it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainbox_server.envs.webshop import catalogue


def first_test_goal(root: Path) -> tuple[str, dict[str, Any]]:
    """The task id of the first goal of the test split, and the goal."""
    shop = catalogue.load(str(root), "1k")
    task_id = shop.split("test")[0]
    return task_id, shop.goals[int(task_id)]


def oracle_actions(goal: dict[str, Any]) -> list[str]:
    """The oracle's actions when the target is on the first results page (the service test checks that it is):
    search the instruction, open the target product, choose the goal's options, buy."""
    options = [f"click[{option}]" for option in goal["goal_options"]]
    return [f"search[{goal['instruction_text']}]", f"click[{goal['asin']}]", *options, "click[Buy Now]"]
