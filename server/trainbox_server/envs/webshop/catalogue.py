"""WebShop's data as the original environment loads it: products, prices and goals (standard library only).

Files, under ``WEBSHOP_ROOT`` in WebShop's own layout::

    data/items_shuffle_1000.json   products (the 1k setting; ``items_shuffle.json`` for the full one)
    data/items_ins_v2_1000.json    per product: its attributes (``items_ins_v2.json`` for the full one)
    data/items_human_ins.json      per product: the crowd-sourced instructions (the goals)
    search_engine/indexes/         the Lucene index over the products (``search.build_index``)

The loading rules are the original's (``web_agent_site/engine/engine.py: load_products`` and
``goal.py: get_human_goals``): products with an asin of ``nan`` or longer than 10 characters are skipped, as are
repeated asins; a price string ``$a`` or ``$a - $b`` becomes ``[a]`` / ``[a, b]`` and the price tag ``$a`` /
``$a to $b``; option names and values are lowercased, ``/`` in a value becomes `` | ``; a product without
attributes gets ``["DUMMY_ATTR"]``. A product's price is its single price, or a uniform draw in its range; a goal's
price cap is the larger of two draws among the first four multiples of 10 above the price (none when fewer than
two exist). Goals are shuffled with seed 233, so goal ``i`` is the original's session ``fixed_i``.

One difference: the original draws prices and caps from Python's unseeded global generator, so they change from
run to run; here they come from a generator seeded with ``PRICE_SEED``, so an episode is reproducible.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from trainbox_server.envs.base import SPLITS
from trainbox_server.envs.registry import data_of
from trainbox_server.errors import EnvironmentUnavailable as DataMissing
from trainbox_server.errors import UnknownSplit, UnknownTask

SETTINGS = {  # WEBSHOP_SETTING → (products file, attributes file)
    "1k": ("items_shuffle_1000.json", "items_ins_v2_1000.json"),
    "full": ("items_shuffle.json", "items_ins_v2.json"),
}
HUMAN_FILE = "items_human_ins.json"
INDEX_DIR = os.path.join("search_engine", "indexes")
DOCUMENTS_DIR = os.path.join("search_engine", "resources")
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
GOAL_SHUFFLE_SEED = 233  # the original's
PRICE_SEED = 233
NO_PRICE_CAP = 1000000
# The baseline's goal-index splits (test: the first 500, val: the next 1000, train: the rest).
ORIGINAL_SPLITS = {"test": (0, 500), "val": (500, 1500), "train": (1500, None)}
# A catalogue with fewer goals (the generated one) splits them in these shares, in the same order.
SMALL_SPLIT_SHARES = {"test": 0.1, "val": 0.2}
DATA_COMMAND = (
    "run `make webshop-data` (downloads WebShop's data; needs the internet) or build a small catalogue with "
    "`python -m trainbox_server.envs.webshop.generate --root DIR` (the webshop venv's python), and set WEBSHOP_ROOT"
)


def data_root() -> str:
    """``WEBSHOP_ROOT``, else the registry's default."""
    return data_of("webshop").root()


def setting() -> str:
    """``WEBSHOP_SETTING`` (``1k`` or ``full``); unset: ``1k`` when its files are there, else ``full``."""
    chosen = os.environ.get("WEBSHOP_SETTING", "")
    if chosen:
        if chosen not in SETTINGS:
            raise DataMissing(f"WEBSHOP_SETTING must be one of {sorted(SETTINGS)}, got {chosen!r}")
        return chosen
    small = os.path.join(data_root(), "data", SETTINGS["1k"][0])
    full = os.path.join(data_root(), "data", SETTINGS["full"][0])
    return "full" if not os.path.isfile(small) and os.path.isfile(full) else "1k"


def missing(what: str) -> DataMissing:
    return DataMissing(f"WebShop data not found: {what}. To install it, {DATA_COMMAND}.")


@dataclass
class Catalogue:
    """Everything an episode reads, loaded once per process and never written."""

    products: dict[str, dict[str, Any]]  # asin → product, in file order
    prices: dict[str, float]
    goals: list[dict[str, Any]]
    attribute_to_asins: dict[str, set[str]] = field(default_factory=dict)

    def split(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise UnknownSplit(f"unknown split {name!r}; WebShop splits are {list(SPLITS)}")
        start, end = split_range(name, len(self.goals))
        return [str(i) for i in range(start, end)]

    def goal(self, task_id: Any) -> tuple[int, dict[str, Any]]:
        """Task ids are goal indices (``"12"``; the original's session name ``"fixed_12"`` is accepted too)."""
        text = task_id[len("fixed_") :] if isinstance(task_id, str) and task_id.startswith("fixed_") else task_id
        if not isinstance(text, str) or not text.isdigit() or int(text) >= len(self.goals):
            raise UnknownTask(
                f"unknown WebShop task {task_id!r}: task ids are goal indices 0..{len(self.goals) - 1} "
                "(list them with task_ids(split))"
            )
        return int(text), self.goals[int(text)]


def split_range(name: str, count: int) -> tuple[int, int]:
    if count >= ORIGINAL_SPLITS["train"][0]:
        start, end = ORIGINAL_SPLITS[name]
        return start, count if end is None else min(end, count)
    test = round(count * SMALL_SPLIT_SHARES["test"])
    val = test + round(count * SMALL_SPLIT_SHARES["val"])
    return {"test": (0, test), "val": (test, val), "train": (val, count)}[name]


def parse_pricing(pricing: Any) -> tuple[list[float], str]:
    """``"$12.99"`` → ``([12.99], "$12.99")``; ``"$5.00 - $9.50"`` → ``([5.0, 9.5], "$5.0 to $9.5")``."""
    if not pricing:
        return [100.0], "$100.0"
    values = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in str(pricing).split("$")[1:]]
    if len(values) == 1:
        return values, f"${values[0]}"
    return values[:2], f"${values[0]} to ${values[1]}"


def prepare_product(raw: dict[str, Any], attributes: dict[str, Any], human: dict[str, Any]) -> dict[str, Any]:
    """One product with the fields the pages, the index and the reward read (the original's names)."""
    product = {k: v for k, v in raw.items() if k not in _DROPPED_KEYS}
    asin = product["asin"]
    bullets = raw.get("small_description")
    pricing, price_tag = parse_pricing(raw.get("pricing"))
    options: dict[str, list[str]] = {}
    for name, contents in (raw.get("customization_options") or {}).items():
        if contents is None:
            continue
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    product.update(
        Title=raw["name"],
        Description=raw.get("full_description") or "",
        Reviews=[],  # the original never loads reviews (its review file is commented out)
        Rating="N.A.",
        BulletPoints=bullets if isinstance(bullets, list) else [bullets],
        pricing=pricing,
        Price=price_tag,
        options=options,
        Attributes=(attributes.get(asin) or {}).get("attributes") or ["DUMMY_ATTR"],
        MainImage=(raw.get("images") or [None])[0],
        query=str(raw.get("query", "")).lower().strip(),
    )
    if asin in human:
        product["instructions"] = human[asin]
    return product


_DROPPED_KEYS = frozenset(
    [
        "product_information",
        "brand",
        "brand_url",
        "list_price",
        "availability_quantity",
        "availability_status",
        "total_reviews",
        "total_answered_questions",
        "seller_id",
        "seller_name",
        "fulfilled_by_amazon",
        "fast_track_message",
        "aplus_present",
        "small_description_old",
    ]
)


def human_goals(products: dict[str, dict[str, Any]], prices: dict[str, float], rng: random.Random) -> list[dict]:
    goals = []
    for asin, product in products.items():
        for instruction in product.get("instructions", ()):
            attributes = instruction.get("instruction_attributes") or []
            if not attributes:
                continue
            caps = [p for p in PRICE_RANGE if p > prices[asin]][:4]
            if len(caps) >= 2:
                price_upper = sorted(rng.sample(caps, 2))[1]
                price_text = f", and price lower than {price_upper:.2f} dollars"
            else:
                price_upper, price_text = NO_PRICE_CAP, ""
            goals.append(
                {
                    "asin": asin,
                    "category": product.get("category"),
                    "query": product["query"],
                    "name": product["name"],
                    "product_category": product.get("product_category", ""),
                    "instruction_text": instruction["instruction"].strip(".") + price_text,
                    "attributes": attributes,
                    "price_upper": price_upper,
                    "goal_options": instruction.get("instruction_options") or [],
                    "weight": 1,
                }
            )
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def load(root: str | None = None, chosen: str | None = None) -> Catalogue:
    root = root or data_root()
    products_file, attributes_file = SETTINGS[chosen or setting()]
    paths = {
        "products": os.path.join(root, "data", products_file),
        "attributes": os.path.join(root, "data", attributes_file),
        "instructions": os.path.join(root, "data", HUMAN_FILE),
    }
    for what, path in paths.items():
        if not os.path.isfile(path):
            raise missing(f"no {what} file {path}")
    raw_products = _read_json(paths["products"])
    attributes = _read_json(paths["attributes"])
    human = _read_json(paths["instructions"])
    products: dict[str, dict[str, Any]] = {}
    for raw in raw_products:
        asin = raw.get("asin")
        if not isinstance(asin, str) or asin == "nan" or len(asin) > 10 or asin in products:
            continue
        products[asin] = prepare_product(raw, attributes, human)
    rng = random.Random(PRICE_SEED)
    prices = {}
    for asin, product in products.items():
        pricing = product["pricing"]
        prices[asin] = pricing[0] if len(pricing) == 1 else rng.uniform(*pricing[:2])
    attribute_to_asins: dict[str, set[str]] = {}
    for asin, product in products.items():
        for attribute in product["Attributes"]:
            attribute_to_asins.setdefault(attribute, set()).add(asin)
    return Catalogue(products, prices, human_goals(products, prices, rng), attribute_to_asins)


def _read_json(path: str) -> Any:
    try:
        with open(path) as file:
            return json.load(file)
    except ValueError as exc:
        raise DataMissing(f"{path} is not WebShop's JSON ({exc}); to reinstall the data, {DATA_COMMAND}") from None


def documents(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The search engine's documents, as the original's ``convert_product_file_format.py`` writes them."""
    docs = []
    for asin, product in catalogue.products.items():
        option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
        bullets = product["BulletPoints"]
        first_bullet = bullets[0] if bullets and bullets[0] is not None else ""
        contents = " ".join([product["Title"], product["Description"], first_bullet, option_text]).lower()
        docs.append({"id": asin, "contents": contents, "product": product})
    return docs
