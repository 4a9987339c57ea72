"""Build a small WebShop catalogue in WebShop's own format, and its search index (for tests and demos).

    python -m trainbox_server.envs.webshop.generate --root DIR [--products 300] [--seed 0] [--no-index]

Writes ``DIR/data/items_shuffle_1000.json`` (products: asin, name, full_description, small_description,
pricing, images, customization_options, category, query, product_category), ``DIR/data/items_ins_v2_1000.json``
(per asin: attributes), ``DIR/data/items_human_ins.json`` (per asin: instructions written the way WebShop's
crowd workers wrote them, each with its ``instruction_attributes`` and ``instruction_options``), then builds
``DIR/search_engine/indexes`` as ``make webshop-data`` does for the real data. Deterministic for a seed.

Products span WebShop's five categories (beauty, food, fashion, furniture, electronics) over many product
types; every instruction names attributes the product has and options it offers, so each goal has a product
that scores 1.0, and other products of the same type that do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
from typing import Any

CATEGORY_SEPARATOR = "\u203a"  # between the parts of WebShop product_category paths (">" below)
# category → [(query, product_category, type noun, attribute pool, option groups)]
TYPES: dict[str, list[tuple[str, str, str, list[str], dict[str, list[str]]]]] = {
    "beauty": [
        (
            "shampoo",
            "Beauty & Personal Care > Hair Care > Shampoo & Conditioner > Shampoos",
            "Shampoo",
            ["sulfate free", "tea tree", "natural ingredients", "dry hair", "paraben free", "long lasting"],
            {"size": ["8 fl oz", "16 fl oz", "32 fl oz"], "scent": ["lavender", "coconut", "mint"]},
        ),
        (
            "lipstick",
            "Beauty & Personal Care > Makeup > Lips > Lipstick",
            "Lipstick",
            ["long lasting", "cruelty free", "highly pigmented", "easy apply", "matte finish"],
            {"color": ["red", "pink", "coral", "plum", "nude"]},
        ),
        (
            "face moisturizer",
            "Beauty & Personal Care > Skin Care > Face > Creams & Moisturizers",
            "Moisturizer",
            ["hyaluronic acid", "fine lines", "sensitive skin", "fragrance free", "dermatologist tested"],
            {"size": ["1.7 ounce", "3.4 ounce"]},
        ),
        (
            "hair extension",
            "Beauty & Personal Care > Hair Care > Hair Extensions, Wigs & Accessories",
            "Hair Extension",
            ["natural looking", "high quality", "heat resistant", "easy use"],
            {"color": ["black", "brown", "blonde"], "size": ["14 inch", "18 inch", "22 inch"]},
        ),
        (
            "nail polish",
            "Beauty & Personal Care > Foot, Hand & Nail Care > Nail Art & Polish",
            "Nail Polish",
            ["non toxic", "quick drying", "long lasting", "high gloss"],
            {"color": ["red", "teal", "lavender", "silver"]},
        ),
    ],
    "food": [
        (
            "green tea",
            "Grocery & Gourmet Food > Beverages > Coffee, Tea & Cocoa > Tea > Green",
            "Green Tea",
            ["gluten free", "caffeine free", "non gmo", "individually wrapped", "usda organic"],
            {"size": ["20 count", "50 count", "100 count"]},
        ),
        (
            "protein bar",
            "Grocery & Gourmet Food > Snack Foods > Bars > Protein",
            "Protein Bar",
            ["low sugar", "gluten free", "high protein", "keto friendly", "plant based"],
            {"flavor name": ["chocolate chip", "peanut butter", "vanilla almond"], "size": ["12 count", "24 count"]},
        ),
        (
            "coffee beans",
            "Grocery & Gourmet Food > Beverages > Coffee, Tea & Cocoa > Coffee > Whole Coffee Beans",
            "Coffee Beans",
            ["dark roast", "fair trade", "usda organic", "single origin"],
            {"size": ["12 ounce", "2 pound", "5 pound"]},
        ),
        (
            "dried fruit",
            "Grocery & Gourmet Food > Snack Foods > Dried Fruit & Raisins",
            "Dried Fruit",
            ["no sugar added", "non gmo", "resealable bag", "vegan"],
            {"flavor name": ["mango", "apricot", "cranberry"], "size": ["8 ounce", "1 pound"]},
        ),
        (
            "hot sauce",
            "Grocery & Gourmet Food > Condiments & Salad Dressings > Hot Sauce",
            "Hot Sauce",
            ["gluten free", "small batch", "no preservatives", "extra hot"],
            {"size": ["5 fl oz", "12 fl oz"]},
        ),
    ],
    "fashion": [
        (
            "running shoes",
            "Clothing, Shoes & Jewelry > Women > Shoes > Athletic > Running",
            "Running Shoes",
            ["rubber sole", "lightweight", "breathable mesh", "arch support", "non slip"],
            {"color": ["black", "white", "pink", "navy"], "size": ["6", "7", "8", "9"]},
        ),
        (
            "t-shirt",
            "Clothing, Shoes & Jewelry > Men > Clothing > Shirts > T-Shirts",
            "T-Shirt",
            ["machine wash", "cotton", "short sleeve", "classic fit", "tagless"],
            {"color": ["black", "gray", "olive", "red"], "size": ["small", "medium", "large"]},
        ),
        (
            "yoga pants",
            "Clothing, Shoes & Jewelry > Women > Clothing > Active > Leggings",
            "Yoga Pants",
            ["high waist", "tummy control", "moisture wicking", "four way stretch", "hand wash"],
            {"color": ["black", "purple", "green"], "size": ["small", "medium", "large"]},
        ),
        (
            "rain jacket",
            "Clothing, Shoes & Jewelry > Men > Clothing > Jackets & Coats > Rain Jackets",
            "Rain Jacket",
            ["waterproof", "hooded", "packable", "zip pockets"],
            {"color": ["yellow", "navy", "black"], "size": ["medium", "large", "xx-large"]},
        ),
        (
            "wool socks",
            "Clothing, Shoes & Jewelry > Men > Clothing > Socks > Casual",
            "Wool Socks",
            ["merino wool", "cushioned", "moisture wicking", "machine wash"],
            {"color": ["gray", "brown", "charcoal"], "size": ["medium", "large"]},
        ),
    ],
    "furniture": [
        (
            "office chair",
            "Home & Kitchen > Furniture > Home Office Furniture > Home Office Chairs",
            "Office Chair",
            ["lumbar support", "height adjustable", "easy assemble", "mesh back", "heavy duty"],
            {"color": ["black", "white", "gray"]},
        ),
        (
            "bookshelf",
            "Home & Kitchen > Furniture > Living Room Furniture > Bookcases",
            "Bookshelf",
            ["solid wood", "easy assemble", "space saving", "storage space"],
            {"color": ["walnut", "white", "espresso"], "size": ["3 tier", "5 tier"]},
        ),
        (
            "coffee table",
            "Home & Kitchen > Furniture > Living Room Furniture > Tables > Coffee Tables",
            "Coffee Table",
            ["tempered glass", "storage shelf", "mid century", "easy assemble"],
            {"color": ["oak", "black", "white"]},
        ),
        (
            "bar stool",
            "Home & Kitchen > Furniture > Kitchen & Dining Room Furniture > Stools",
            "Bar Stool",
            ["swivel seat", "height adjustable", "faux leather", "footrest"],
            {"color": ["black", "brown", "gray"], "size": ["24 inch", "30 inch"]},
        ),
        (
            "floor lamp",
            "Home & Kitchen > Furniture > Lighting > Floor Lamps",
            "Floor Lamp",
            ["dimmable", "energy efficient", "modern design", "living room"],
            {"color": ["gold", "black", "silver"]},
        ),
    ],
    "electronics": [
        (
            "wireless earbuds",
            "Electronics > Headphones, Earbuds & Accessories > Earbuds",
            "Wireless Earbuds",
            ["noise cancelling", "long battery life", "water resistant", "bluetooth 5.0", "charging case"],
            {"color": ["black", "white", "blue"]},
        ),
        (
            "phone case",
            "Cell Phones & Accessories > Cases, Holsters & Sleeves > Basic Cases",
            "Phone Case",
            ["shockproof", "wireless charging", "slim fit", "screen protector"],
            {"color": ["clear", "black", "pink"], "size": ["iphone 13", "iphone 14", "iphone 15"]},
        ),
        (
            "usb c cable",
            "Electronics > Computers & Accessories > Cables > USB Cables",
            "USB C Cable",
            ["fast charging", "braided nylon", "data transfer", "high speed"],
            {"color": ["black", "white"], "size": ["3 ft", "6 ft", "10 ft"]},
        ),
        (
            "bluetooth speaker",
            "Electronics > Portable Audio & Video > Portable Speakers & Docks",
            "Bluetooth Speaker",
            ["waterproof", "long battery life", "stereo sound", "easy carry"],
            {"color": ["black", "red", "blue"]},
        ),
        (
            "hdmi cable",
            "Electronics > Television & Video > Accessories > Cables > HDMI Cables",
            "HDMI Cable",
            ["high speed", "gold plated", "4k hdr", "braided nylon"],
            {"size": ["3 ft", "6 ft", "15 ft"]},
        ),
    ],
}
BRANDS = [
    "Acme",
    "Brightway",
    "Corvel",
    "Dunmore",
    "Elsworth",
    "Fairhaven",
    "Greyloft",
    "Halcyon",
    "Ironbark",
    "Juniper",
    "Kestrel",
    "Lumen",
]
STYLES = ["Classic", "Premium", "Everyday", "Deluxe", "Essential", "Ultra", "Pro", "Signature", "Original", "Compact"]
OPENINGS = (
    "i am looking for {thing}",
    "i need {thing}",
    "i want {thing}",
    "find me {thing}",
    "i'm looking for {thing}",
    "can you get me {thing}",
)


def _asin(rng: random.Random, used: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        if asin not in used:
            used.add(asin)
            return asin


def _price(rng: random.Random) -> str:
    low = round(rng.uniform(4, 120), 2)
    if rng.random() < 0.25:
        return f"${low:.2f} - ${round(low * rng.uniform(1.1, 1.6), 2):.2f}"
    return f"${low:.2f}"


def _instruction(rng: random.Random, noun: str, attributes: list[str], options: list[str]) -> str:
    thing = f"{' and '.join(attributes)} {noun.lower()}"
    text = rng.choice(OPENINGS).format(thing=thing)
    if options:
        text += " in " + " and ".join(options)
    return text


def generate(products: int = 300, seed: int = 0) -> tuple[list[dict], dict[str, dict], dict[str, list[dict]]]:
    """(products, attributes per asin, instructions per asin) in WebShop's formats."""
    rng = random.Random(seed)
    kinds = [(category, kind) for category, kinds in TYPES.items() for kind in kinds]
    used: set[str] = set()
    items: list[dict[str, Any]] = []
    attributes: dict[str, dict[str, Any]] = {}
    human: dict[str, list[dict[str, Any]]] = {}
    for number in range(products):
        category, (query, path, noun, pool, groups) = kinds[number % len(kinds)]
        asin = _asin(rng, used)
        brand, style = rng.choice(BRANDS), rng.choice(STYLES)
        own = sorted(rng.sample(pool, k=min(len(pool), rng.randint(2, 4))))
        offered = {name: sorted(rng.sample(values, k=rng.randint(min(2, len(values)), len(values))))
                   for name, values in groups.items() if rng.random() < 0.9}  # fmt: skip
        name = f"{brand} {style} {noun} - {', '.join(a.title() for a in own[:2])}"
        items.append(
            {
                "asin": asin,
                "name": name,
                "full_description": f"The {brand} {style.lower()} {noun.lower()}. "
                + " ".join(f"It is {a}." for a in own),
                "small_description": [f"{a.capitalize()} design from {brand}" for a in own],
                "pricing": _price(rng),
                "images": [f"https://images.example/{asin}.jpg"],
                "customization_options": {
                    option.title(): [{"value": v.title() if option == "color" else v, "image": None} for v in values]
                    for option, values in offered.items()
                },
                "category": category,
                "query": query,
                "product_category": path.replace(">", CATEGORY_SEPARATOR),
                "brand": brand,
            }
        )
        attributes[asin] = {"attributes": own}
        human[asin] = []
        for _ in range(rng.choice((1, 1, 2))):
            wanted = sorted(rng.sample(own, k=rng.randint(1, min(2, len(own)))))
            chosen = [rng.choice(values) for values in offered.values() if rng.random() < 0.8]
            human[asin].append(
                {
                    "asin": asin,
                    "instruction": _instruction(rng, noun, wanted, chosen),
                    "instruction_attributes": wanted,
                    "instruction_options": chosen,
                }
            )
    return items, attributes, human


def write(root: str, products: int = 300, seed: int = 0, index: bool = True) -> dict[str, Any]:
    from trainbox_server.envs.webshop import catalogue

    items, attributes, human = generate(products, seed)
    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir, exist_ok=True)
    products_file, attributes_file = catalogue.SETTINGS["1k"]
    for name, value in ((products_file, items), (attributes_file, attributes), (catalogue.HUMAN_FILE, human)):
        with open(os.path.join(data_dir, name), "w") as file:
            json.dump(value, file, indent=1)
    loaded = catalogue.load(root, "1k")
    summary: dict[str, Any] = {"root": root, "products": len(loaded.products), "goals": len(loaded.goals)}
    if index:
        summary["index"] = build_index(root, loaded)
    return summary


def build_index(root: str, loaded: Any = None) -> str:
    from trainbox_server.envs.webshop import catalogue, search

    loaded = loaded or catalogue.load(root)
    return search.build_index(catalogue.documents(loaded), root, catalogue.INDEX_DIR, catalogue.DOCUMENTS_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="the WEBSHOP_ROOT to write")
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-index", action="store_true", help="write the data files only")
    args = parser.parse_args(argv)
    print(json.dumps(write(os.path.abspath(args.root), args.products, args.seed, not args.no_index)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
