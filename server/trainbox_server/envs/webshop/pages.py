"""WebShop's pages in text mode, and what a click or a search does (pure, standard library only).

The original renders each page as HTML and its text mode keeps the visible text nodes, stripped, joined with
`` [SEP] `` (``WebAgentTextEnv.convert_html_to_text(simple=True)``). Here each page lists its text nodes
directly, in the templates' order, with the same node rules: an empty value is no node; a value of only
whitespace is no node when it holds a line break and an empty node otherwise (BeautifulSoup collapses
whitespace-only strings to one newline or one space, and the text mode drops bare newlines).

Actions and validity are the original's (``WebAgentTextEnv.step``): the action must match ``name[arg]`` (the
first ``[`` after at least one character, the last ``]``); ``arg`` is lowercased; ``search[...]`` with a
non-empty argument is valid on every page; ``click[x]`` is valid when ``x`` is one of the page's clickables
(its buttons' and product links' texts, lowercased, then its option values) and is not ``search``. Anything
else changes nothing: the observation is the same page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

END_BUTTON = "buy now"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BACK_TO_SEARCH = "back to search"
SUB_PAGES = {"description": "Description", "features": "Features", "reviews": "Reviews", "attributes": "Attributes"}
PRODUCT_WINDOW = 10  # results per page, the original's
ACTION = re.compile(r"(.+)\[(.+)\]")


@dataclass
class Session:
    """Where an episode is: the page and what the original keeps in its session."""

    page: str = "index"  # index | search_results | item_page | item_sub_page | done
    keywords: list[str] | None = None
    results: list[str] = field(default_factory=list)  # the asins of the last search, best first
    page_number: int = 1
    asin: str | None = None
    asins: set[str] = field(default_factory=set)  # products opened
    options: dict[str, str] = field(default_factory=dict)
    sub_page: str | None = None


def parse_action(action: str) -> tuple[str, str | None]:
    match = ACTION.match(action)
    if match is None:
        return action, None
    return match.group(1), match.group(2)


def clickables(session: Session, products: dict[str, dict[str, Any]], show_attrs: bool) -> dict[str, str]:
    """The page's clickables, in the original's order: text → kind (``button``, ``product`` or the option name)."""
    found: dict[str, str] = {}
    if session.page == "index":
        found["search"] = "button"
    elif session.page == "search_results":
        found[BACK_TO_SEARCH] = "button"
        if session.page_number > 1:
            found[PREV_PAGE] = "button"
        found[NEXT_PAGE] = "button"
        for asin in _page_of(session):
            found[asin.lower()] = "product"
    elif session.page == "item_page":
        for text in (BACK_TO_SEARCH, PREV_PAGE, "description", "features", "reviews"):
            found[text] = "button"
        if show_attrs:
            found["attributes"] = "button"
        found[END_BUTTON] = "button"
        for name, values in _product(session, products)["options"].items():
            for value in values:
                found[value] = name  # a value in two option groups: the later group's (as the original's dict)
    elif session.page == "item_sub_page":
        found[BACK_TO_SEARCH] = "button"
        found[PREV_PAGE] = "button"
    return found


def _page_of(session: Session) -> list[str]:
    start = (session.page_number - 1) * PRODUCT_WINDOW
    return session.results[start : start + PRODUCT_WINDOW]


def _product(session: Session, products: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return products[session.asin or ""]


def text(
    session: Session,
    instruction: str,
    products: dict[str, dict[str, Any]],
    show_attrs: bool = False,
    reward: float | None = None,
) -> str:
    """The page's observation in the original's ``text`` mode."""
    nodes: list[Any]
    if session.page == "index":
        nodes = ["WebShop", "Instruction: ", instruction, "Search"]
    elif session.page == "search_results":
        nodes = ["Instruction:", instruction, "Back to Search"]
        nodes.append(f"Page {session.page_number} (Total results: {len(session.results)})")
        nodes += ["< Prev", "Next >"] if session.page_number > 1 else ["Next >"]
        for asin in _page_of(session):
            product = products[asin]
            nodes += [asin, product["Title"], product["Price"]]
    elif session.page == "item_page":
        product = _product(session, products)
        nodes = ["Instruction:", instruction, "Back to Search", "< Prev"]
        for name, values in product["options"].items():
            nodes += [name, *values]
        nodes += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
        nodes += ["Description", "Features", "Reviews", *(["Attributes"] if show_attrs else []), "Buy Now"]
    elif session.page == "item_sub_page":
        product = _product(session, products)
        nodes = ["Instruction:", instruction, "Back to Search", "< Prev"]
        if session.sub_page == "Description":
            nodes.append(product["Description"])
        elif session.sub_page == "Features":
            nodes += [f" {bullet}" for bullet in product["BulletPoints"]]
        elif session.sub_page == "Reviews":
            for review in product["Reviews"]:
                nodes += [f'"{review.get("title")}"', review.get("score"), review.get("body")]
        elif session.sub_page == "Attributes":
            nodes += [f" {attribute}" for attribute in product["Attributes"]]
            nodes += [product.get("category"), product.get("query"), product.get("product_category")]
    else:  # done: what the text environment's done page shows (it passes no goal or attributes to the template)
        nodes = ["Thank you for shopping with us!", "Your code: ", "None", " (Paste it in your MTurk interface.)"]
        nodes += ["Purchased", "asin", session.asin, "options", _tojson(session.options)]
        nodes += ["attrs", "None", "category", "None", "query", "None", "product category", "None"]
        nodes += ["Target", "asin", "options", "attrs", "price upper", "instuction text", "category"]
        nodes += ["product category", "query", "Goal ", "None", "Reward", "Your score (min 0.0, max 1.0)"]
        nodes += [str(reward), "Reward Details ", "None"]
    return " [SEP] ".join(kept for kept in map(_node, nodes) if kept is not None)


def _node(value: Any) -> str | None:
    if value is None:
        value = "None"  # Jinja renders None as "None"
    value = str(value)
    if value == "":
        return None
    if not value.strip():
        return None if "\n" in value else ""
    return value.strip()


def _tojson(value: Any) -> str:
    """Flask's ``tojson`` filter: sorted keys, ASCII, HTML-safe."""
    dumped = json.dumps(value, sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        dumped = dumped.replace(char, escaped)
    return dumped
