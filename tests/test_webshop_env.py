"""WebShop: the original's text mode and reward on a catalogue built by the project's builder, through the Runtime.

The catalogue (``trainbox_server.envs.webshop.generate``) and its Lucene index are built once per session into a
temporary WEBSHOP_ROOT by the webshop venv's interpreter; episodes run in real worker processes of that venv. The
goals, prices and products the tests aim at are read with the family's own loader (standard library only), which
is what the workers load too. The page texts are checked against what the original's templates render.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from trainbox_server.envs.webshop import catalogue, pages
from trainbox_server.envs.webshop.family import extract_action
from trainbox_server.envs.webshop.pages import Session
from trainbox_server.envs.webshop.reward import normalize_color
from trainbox_server.errors import EnvironmentUnavailable, EpisodeOver, InvalidAction
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig


def act(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# --- pure parts ----------------------------------------------------------------------------------------

PRODUCT = {
    "Title": "Red Shoe A & co",
    "Price": "$10.5",
    "Rating": "N.A.",
    "options": {"color": ["red", "blue | green"], "size": ["7", "8"]},
    "Description": "A shoe.\n Great",
    "BulletPoints": ["soft", "light"],
    "Reviews": [],
    "Attributes": ["a1", "a2"],
    "category": "fashion",
    "query": "shoes",
    "product_category": "A \u203a B",
}
OTHER = {**PRODUCT, "Title": "Shoe B", "Price": "$1.0 to $2.0"}
PRODUCTS = {"B01": PRODUCT, "B02": OTHER}


# Expected texts: what the original's templates render, run through its text mode (BeautifulSoup 4.11).
@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (Session(), "WebShop [SEP] Instruction: [SEP] i want [SEP] Search"),
        (
            Session(page="search_results", keywords=["red"], results=["B01", "B02"]),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] Page 1 (Total results: 2) [SEP] Next > [SEP] B01 "
            "[SEP] Red Shoe A & co [SEP] $10.5 [SEP] B02 [SEP] Shoe B [SEP] $1.0 to $2.0",
        ),
        (
            Session(page="search_results", keywords=["red"], results=["B01", "B02"], page_number=2),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] Page 2 (Total results: 2) [SEP] < Prev [SEP] Next >",
        ),
        (
            Session(page="item_page", asin="B01", options={"color": "red"}),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] < Prev [SEP] color [SEP] red [SEP] blue | green "
            "[SEP] size [SEP] 7 [SEP] 8 [SEP] Red Shoe A & co [SEP] Price: $10.5 [SEP] Rating: N.A. [SEP] Description "
            "[SEP] Features [SEP] Reviews [SEP] Buy Now",
        ),
        (
            Session(page="item_sub_page", asin="B01", sub_page="Description"),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] < Prev [SEP] A shoe.\n Great",
        ),
        (
            Session(page="item_sub_page", asin="B01", sub_page="Features"),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] < Prev [SEP] soft [SEP] light",
        ),
        (
            Session(page="item_sub_page", asin="B01", sub_page="Reviews"),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] < Prev",
        ),
        (
            Session(page="item_sub_page", asin="B01", sub_page="Attributes"),
            "Instruction: [SEP] i want [SEP] Back to Search [SEP] < Prev [SEP] a1 [SEP] a2 [SEP] fashion [SEP] shoes "
            "[SEP] A \u203a B",
        ),
        (
            Session(page="done", asin="B01", options={"color": "red"}),
            "Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk interface.) "
            '[SEP] Purchased [SEP] asin [SEP] B01 [SEP] options [SEP] {"color": "red"} [SEP] attrs [SEP] None [SEP] '
            "category [SEP] None [SEP] query [SEP] None [SEP] product category [SEP] None [SEP] Target [SEP] asin "
            "[SEP] options [SEP] attrs [SEP] price upper [SEP] instuction text [SEP] category [SEP] product category "
            "[SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] 0.5 [SEP] "
            "Reward Details [SEP] None",
        ),
    ],
)
def test_page_texts_are_the_original_text_mode(session: Session, expected: str) -> None:
    assert pages.text(session, "i want", PRODUCTS, reward=0.5) == expected


def test_empty_and_blank_values_follow_the_html_text_rules() -> None:
    """An empty value is no node; a blank one without a line break is an empty node (BeautifulSoup's rule)."""
    blank = {**PRODUCT, "Description": "", "BulletPoints": [""]}
    described = Session(page="item_sub_page", asin="B01", sub_page="Description")
    featured = Session(page="item_sub_page", asin="B01", sub_page="Features")
    assert pages.text(described, "i", {"B01": blank}).endswith("< Prev")
    assert pages.text(featured, "i", {"B01": blank}).endswith("< Prev [SEP] ")


def test_clickables_in_the_original_order() -> None:
    results = Session(page="search_results", results=[f"B{i:02}" for i in range(12)], page_number=2)
    assert list(pages.clickables(results, PRODUCTS, False)) == ["back to search", "< prev", "next >", "b10", "b11"]
    item = pages.clickables(Session(page="item_page", asin="B01"), PRODUCTS, show_attrs=True)
    assert list(item) == [
        "back to search", "< prev", "description", "features", "reviews", "attributes", "buy now",
        "red", "blue | green", "7", "8",
    ]  # fmt: skip
    assert item["blue | green"] == "color" and item["8"] == "size"


@pytest.mark.parametrize(
    ("action", "parsed"),
    [
        ("search[red shoes]", ("search", "red shoes")),
        ("click[< Prev]", ("click", "< Prev")),
        ("search[]", ("search[]", None)),
        ("click[a] and [b]", ("click[a] and ", "b")),  # the original's greedy pattern
        ("buy it", ("buy it", None)),
    ],
)
def test_parse_action_is_the_originals(action: str, parsed: tuple[str, str | None]) -> None:
    assert pages.parse_action(action) == parsed


@pytest.mark.parametrize(
    ("message", "action"),
    [
        (act("search[red shoes]"), ("search[red shoes]", None)),
        (act("  click[Buy Now]\n"), ("click[Buy Now]", None)),
        (act("Thought: the first one fits.\nAction: click[B01]"), ("click[B01]", None)),
        (act("just prose"), ("just prose", None)),
        ({"content": [{"type": "text", "text": "search[mug]"}]}, ("search[mug]", None)),
        (
            {"tool_calls": [{"id": "t1", "function": {"name": "webshop", "arguments": '{"action": "click[b01]"}'}}]},
            ("click[b01]", "t1"),
        ),
    ],
)
def test_extract_action(message: dict[str, Any], action: tuple[str, str | None]) -> None:
    assert extract_action(message) == action


@pytest.mark.parametrize(
    ("pricing", "parsed"),
    [
        ("$12.99", ([12.99], "$12.99")),
        ("$5.00 - $9.50", ([5.0, 9.5], "$5.0 to $9.5")),
        ("", ([100.0], "$100.0")),
        (None, ([100.0], "$100.0")),
    ],
)
def test_pricing_parses_as_the_original(pricing: Any, parsed: tuple[list[float], str]) -> None:
    assert catalogue.parse_pricing(pricing) == parsed


@pytest.mark.parametrize(
    ("value", "normal"),
    [("navy blue", "blue"), ("dark blue", "blue"), ("standard", "tan"), ("16 fl oz", "16 fl oz")],
)
def test_normalize_color_takes_the_first_listed_colour(value: str, normal: str) -> None:
    assert normalize_color(value) == normal


@pytest.mark.parametrize(
    ("count", "splits"),
    [
        (12087, {"test": (0, 500), "val": (500, 1500), "train": (1500, 12087)}),
        (394, {"test": (0, 39), "val": (39, 118), "train": (118, 394)}),
    ],
)
def test_splits(count: int, splits: dict[str, tuple[int, int]]) -> None:
    assert {name: catalogue.split_range(name, count) for name in splits} == splits


# --- the engine, in worker processes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(webshop_data: Path) -> catalogue.Catalogue:
    return catalogue.load(str(webshop_data), "1k")


def webshop_config(root: Path, warm: int = 1) -> RuntimeConfig:
    family = FamilyConfig("webshop", warm=warm, processes=2, create_timeout=300.0, env={"WEBSHOP_ROOT": str(root)})
    return RuntimeConfig(families={"webshop": family})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime(webshop_data: Path) -> AsyncIterator[Runtime]:
    async with Runtime(webshop_config(webshop_data)) as rt:
        yield rt


async def open_product(rt: Runtime, instance_id: str, query: str, asin: str) -> Any:
    """Search, page through the results to ``asin`` and open it."""
    result = await rt.step(instance_id, act(f"search[{query}]"))
    for _ in range(5):
        if asin.lower() in result.info["available_actions"]["clickables"]:
            return await rt.step(instance_id, act(f"click[{asin}]"))
        result = await rt.step(instance_id, act("click[Next >]"))
    raise AssertionError(f"{asin} is not in the first 50 results of {query!r}")


async def buy(rt: Runtime, task_id: str, query: str, asin: str, options: list[str]) -> Any:
    created = await rt.create("webshop", task_id)
    item = await open_product(rt, created.instance_id, query, asin)
    assert item.info["page"] == "item_page" and not item.terminated
    for option in options:
        chosen = await rt.step(created.instance_id, act(f"click[{option}]"))
        assert chosen.info["valid"], chosen.info
    bought = await rt.step(created.instance_id, act("click[Buy Now]"))
    assert bought.terminated and bought.info["page"] == "done"
    sparse = await rt.evaluate(created.instance_id, {"sparse": True})
    await rt.close(created.instance_id)
    return bought, sparse


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_every_goal_oracle_scores_one(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    """Search the instruction, open the target, choose the goal's options, buy: 1.0 for each goal."""
    task_ids = [t for split in ("train", "val", "test") for t in await runtime.task_ids("webshop", split)]
    assert sorted(task_ids, key=int) == [str(i) for i in range(len(shop.goals))] and len(shop.goals) > 300
    assert len({goal["product_category"].split(" \u203a ")[0] for goal in shop.goals}) >= 5
    gate = asyncio.Semaphore(8)

    async def oracle(task_id: str) -> tuple[str, float, float, dict[str, Any]]:
        goal = shop.goals[int(task_id)]
        async with gate:
            bought, sparse = await buy(runtime, task_id, goal["instruction_text"], goal["asin"], goal["goal_options"])
        return task_id, bought.reward, sparse.reward, bought.info["evaluation"]

    results = await asyncio.gather(*(oracle(t) for t in task_ids))
    failures = [(t, details) for t, reward, sparse, details in results if reward != 1.0 or sparse != 1.0]
    assert not failures, failures[:3]
    assert all(details["failed"] == [] and details["r_type"] == 1.0 for *_, details in results)


def goal_with(shop: catalogue.Catalogue, want: Any) -> tuple[int, dict[str, Any]]:
    for index, goal in enumerate(shop.goals):
        if want(goal):
            return index, goal
    raise AssertionError("the generated catalogue has no such goal")


@pytest.mark.asyncio(loop_scope="module")
async def test_wrong_product_scores_less_and_says_why(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    index, goal = goal_with(shop, lambda g: True)
    words = set(re.findall(r"[a-z0-9]+", goal["name"].lower()))
    other = next(
        asin
        for asin, p in shop.products.items()
        if p["category"] != goal["category"] and not words & set(re.findall(r"[a-z0-9]+", p["name"].lower()))
    )
    bought, sparse = await buy(runtime, str(index), shop.products[other]["Title"], other, [])
    details = bought.info["evaluation"]
    assert bought.reward == 0.0 and sparse.reward == 0.0
    assert details["r_type"] == 0.0 and details["title_score"] == 0.0 and "type" in details["failed"]
    assert details["purchased"]["asin"] == other and details["goal"]["asin"] == goal["asin"]


@pytest.mark.asyncio(loop_scope="module")
async def test_wrong_options_score_less_and_name_the_option(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    def has_colour_choice(goal: dict[str, Any]) -> bool:
        colours = shop.products[goal["asin"]]["options"].get("color", [])
        return len(colours) > 1 and any(option in colours for option in goal["goal_options"])

    index, goal = goal_with(shop, has_colour_choice)
    colours = shop.products[goal["asin"]]["options"]["color"]
    wanted = next(option for option in goal["goal_options"] if option in colours)
    wrong = next(colour for colour in colours if colour != wanted)
    others = [option for option in goal["goal_options"] if option != wanted]
    bought, sparse = await buy(runtime, str(index), goal["instruction_text"], goal["asin"], [*others, wrong])
    details = bought.info["evaluation"]
    parts = len(goal["attributes"]) + len(goal["goal_options"]) + 1
    assert bought.reward == pytest.approx((parts - 1) / parts) and sparse.reward == 0.0
    assert details["failed"] == ["options"] and details["missing_options"] == [wanted]
    assert details["purchased"]["options"]["color"] == wrong


@pytest.mark.asyncio(loop_scope="module")
async def test_over_the_price_scores_less_and_says_price(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    def dearer(goal: dict[str, Any]) -> str | None:
        return next(
            (
                asin
                for asin, p in shop.products.items()
                if p["query"] == goal["query"] and shop.prices[asin] > goal["price_upper"]
            ),
            None,
        )

    index, goal = goal_with(shop, lambda g: dearer(g) is not None)
    asin = dearer(goal)
    assert asin is not None
    bought, _ = await buy(runtime, str(index), shop.products[asin]["Title"], asin, [])
    details = bought.info["evaluation"]
    assert bought.reward < 1.0 and "price" in details["failed"] and details["r_price"] is False
    assert details["price"] > details["price_upper"] == goal["price_upper"]


@pytest.mark.asyncio(loop_scope="module")
async def test_invalid_actions_leave_the_page_and_say_what_is_valid(
    runtime: Runtime, shop: catalogue.Catalogue
) -> None:
    created = await runtime.create("webshop", "0")
    search_page = created.messages[-1]["content"]
    assert search_page.startswith("WebShop [SEP] Instruction: [SEP] ") and search_page.endswith(" [SEP] Search")
    for action in ("click[Buy Now]", "click[search]", "search[]", "I would buy the red one", ""):
        result = await runtime.step(created.instance_id, act(action))
        assert result.messages == [{"role": "user", "content": search_page}] and not result.terminated
        assert result.info["valid"] is False and "search[<keywords>]" in result.info["invalid_action"]
    results = await runtime.step(created.instance_id, act("search[shampoo]"))
    assert results.info["valid"] and results.info["page"] == "search_results"
    wrong = await runtime.step(created.instance_id, act("click[B0NOTHERE1]"))
    assert wrong.messages == results.messages and wrong.info["valid"] is False
    first = results.info["available_actions"]["clickables"][2]  # after "back to search", "next >"
    assert f"click[{first}]" in wrong.info["invalid_action"]
    with pytest.raises(InvalidAction):  # not a chat message at all: a request error, not an observation
        await runtime.step(created.instance_id, "search[shampoo]")  # type: ignore[arg-type]
    await runtime.close(created.instance_id)


@pytest.mark.asyncio(loop_scope="module")
async def test_navigation_and_sub_pages(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    goal = shop.goals[0]
    created = await runtime.create("webshop", "fixed_0")  # the original's session name
    assert created.info["task_id"] == "0" and created.info["instruction"] == goal["instruction_text"]
    instance = created.instance_id
    item = await open_product(runtime, instance, goal["instruction_text"], goal["asin"])
    features = await runtime.step(instance, act("click[Features]"))
    assert features.info["page"] == "item_sub_page"
    assert features.messages[0]["content"].endswith(" [SEP] ".join(shop.products[goal["asin"]]["BulletPoints"]))
    back = await runtime.step(instance, act("click[< Prev]"))
    assert back.messages == item.messages
    results = await runtime.step(instance, act("click[< Prev]"))
    assert results.info["page"] == "search_results"
    home = await runtime.step(instance, act("click[Back to Search]"))
    assert home.messages[0]["content"] == created.messages[-1]["content"]
    assert (await runtime.evaluate(instance)).details["failed"] == ["not purchased"]
    tool = {"tool_calls": [{"id": "c1", "function": {"name": "webshop", "arguments": {"action": "search[mug]"}}}]}
    by_tool = await runtime.step(instance, tool)
    assert by_tool.messages[0]["role"] == "tool" and by_tool.messages[0]["tool_call_id"] == "c1"
    await runtime.close(instance)


@pytest.mark.asyncio(loop_scope="module")
async def test_fork_continues_independently(runtime: Runtime, shop: catalogue.Catalogue) -> None:
    goal = shop.goals[1]
    created = await runtime.create("webshop", "1")
    await open_product(runtime, created.instance_id, goal["instruction_text"], goal["asin"])
    (copy,) = await runtime.fork(created.instance_id, ["webshop-fork-1"])
    left = await runtime.step(created.instance_id, act("click[Buy Now]"))
    right = await runtime.step(copy, act("click[< Prev]"))
    assert left.terminated and not right.terminated and right.info["page"] == "search_results"
    with pytest.raises(EpisodeOver):
        await runtime.step(created.instance_id, act("click[Buy Now]"))
    for instance in (created.instance_id, copy):
        await runtime.close(instance)


@pytest.mark.asyncio
async def test_missing_data_names_the_command(tmp_path: Path) -> None:
    async with Runtime(webshop_config(tmp_path / "empty", warm=0)) as rt:
        with pytest.raises(EnvironmentUnavailable) as listing:
            await rt.task_ids("webshop", "train")
        with pytest.raises(EnvironmentUnavailable) as creating:
            await rt.create("webshop", "0")
    for error in (listing.value, creating.value):
        assert "make webshop-data" in str(error) and "WEBSHOP_ROOT" in str(error)
