"""``make webshop-data``: download WebShop's data into ``WEBSHOP_ROOT`` (its own layout) and build the index.

    python -m trainbox_server.envs.webshop.download [--root DIR] [--setting 1k|full] [--index-only]

The files are the ones the original's ``setup.sh`` fetches from Google Drive: the 1k setting's products and
attributes (``-d small``; ``--setting full`` fetches the full catalogue), and the human instructions. Then the
search index is built as the original's ``run_indexing.sh`` builds it. Without the internet the download fails
and says so; ``--index-only`` indexes files you placed under ``DIR/data`` yourself.
``WEBSHOP_DOWNLOAD_URL`` (a template with ``{id}``) overrides where files come from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import urllib.request

from trainbox_server.envs.webshop import catalogue

# file → Google Drive id, as in the original's setup.sh
DRIVE_IDS = {
    "items_shuffle_1000.json": "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib",
    "items_ins_v2_1000.json": "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu",
    "items_shuffle.json": "1A2whVgOO0euk5O13n2iYDM0bQRkkRduB",
    "items_ins_v2.json": "1s2j6NgHljiZzQNL3veZaAiyW_qDEgBNi",
    catalogue.HUMAN_FILE: "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O",
}
DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
TIMEOUT = 60


class DownloadFailed(Exception):
    pass


def fetch(name: str, target: str) -> None:
    url = os.environ.get("WEBSHOP_DOWNLOAD_URL", DRIVE_URL).format(id=DRIVE_IDS[name])
    partial = target + ".part"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply, open(partial, "wb") as out:
            shutil.copyfileobj(reply, out, 1 << 20)
        with open(partial, "rb") as check:
            if check.read(1) not in (b"[", b"{"):
                raise DownloadFailed(f"{url} did not answer JSON (a quota or sign-in page?)")
    except (OSError, DownloadFailed) as exc:
        if os.path.exists(partial):
            os.remove(partial)
        raise DownloadFailed(f"could not download {name} from {url}: {exc}") from None
    os.replace(partial, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", default=catalogue.data_root(), help="WEBSHOP_ROOT (default: %(default)s)")
    parser.add_argument("--setting", choices=sorted(catalogue.SETTINGS), default="1k")
    parser.add_argument("--index-only", action="store_true", help="build the index over files already there")
    args = parser.parse_args(argv)
    root = os.path.abspath(os.path.expanduser(args.root))
    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir, exist_ok=True)
    if not args.index_only:
        for name in (*catalogue.SETTINGS[args.setting], catalogue.HUMAN_FILE):
            target = os.path.join(data_dir, name)
            if os.path.isfile(target):
                print(f"{target} is there")
                continue
            print(f"downloading {name} into {data_dir}", flush=True)
            try:
                fetch(name, target)
            except DownloadFailed as exc:
                print(
                    f"webshop-data: {exc}.\nThis needs the internet. Elsewhere, download WebShop's data (its setup.sh "
                    f"lists the files), put them in {data_dir}, and run "
                    f"`python -m trainbox_server.envs.webshop.download --root {root} --index-only`.",
                    file=sys.stderr,
                )
                return 1
    from trainbox_server.envs.webshop import search

    loaded = catalogue.load(root, args.setting)
    index = search.build_index(catalogue.documents(loaded), root, catalogue.INDEX_DIR, catalogue.DOCUMENTS_DIR)
    print(json.dumps({"root": root, "products": len(loaded.products), "goals": len(loaded.goals), "index": index}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
