"""Environment families: one adapter module per family, all speaking the protocol in ``base``.

Adapter modules run inside worker processes started with the family's own interpreter, so this package
and ``base`` import only the standard library; each adapter imports its engine lazily.
"""

# The only modules a worker will import for a family name: user input never reaches importlib.
FAMILY_MODULES: dict[str, str] = {
    "bfcl": "trainbox_server.envs.bfcl",
    "appworld": "trainbox_server.envs.appworld",
    "webshop": "trainbox_server.envs.webshop",
}

# Families whose rewards come from a separate evaluator process (their instances cannot read the answers).
JUDGE_MODULES: dict[str, str] = {
    "appworld": "trainbox_server.envs.appworld.judge",
}
# Families that execute model code: their workers run in the sandbox (runtime.sandbox).
EXECUTES_CODE = frozenset({"appworld"})
