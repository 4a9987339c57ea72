"""BFCL's ``format_sensitivity`` category: single-turn AST tasks asked in 26 prompt formats.

Runs in the BFCL worker. BFCL builds it from ``BFCL_v4_format_sensitivity.json`` (a category → task ids list) and
its format configs (``ret_fmt=...&tool_call_tag=...&func_doc_fmt=...&prompt_fmt=...&style=...``): every listed
task, in dataset order, crossed with every config, is ``format_sensitivity_<index>:<config>:<task id>``. It needs
neither a model nor the internet: the system prompt states the config's function-doc and answer formats, the
answer is the message text in that format (python calls, JSON, verbose or concise XML, optionally inside
``<TOOLCALL>`` tags), and the score is BFCL's ``ast_checker`` on the task's own ground truth.

The prompt and the decoding are BFCL's own (``model_handler.utils``: ``formulate_system_prompt``,
``default_decode_ast_prompting``; python via ``ast``, JSON via ``json``, XML via ElementTree with values read by
``ast.literal_eval`` — nothing is executed). That module imports its Java/JavaScript parsers, which need
tree-sitter; format sensitivity is python-only (BFCL scores it with ``Language.PYTHON``), so those two parser
modules are registered as stand-ins that refuse, and tree-sitter is not installed.
"""

from __future__ import annotations

import sys
import types
from functools import cache
from typing import Any

CATEGORY = "format_sensitivity"
_TREE_SITTER_PARSERS = {
    "bfcl_eval.model_handler.parser.java_parser": "parse_java_function_call",
    "bfcl_eval.model_handler.parser.js_parser": "parse_javascript_function_call",
}


def _refuse(_source: str) -> Any:
    raise ValueError("Java/JavaScript answers are not part of format_sensitivity")


def _handler_utils() -> Any:
    for name, function in _TREE_SITTER_PARSERS.items():
        if name not in sys.modules:
            stand_in = types.ModuleType(name, "trainbox: format_sensitivity decodes python-style answers only.")
            setattr(stand_in, function, _refuse)
            sys.modules[name] = stand_in
    from bfcl_eval.model_handler import utils

    return utils


@cache
def configs() -> tuple[str, ...]:
    from bfcl_eval.utils import get_all_format_sensitivity_configs

    return tuple(get_all_format_sensitivity_configs())


def listed_ids(data_dir: Any) -> dict[str, list[str]]:
    """Category → the task ids BFCL's id file lists for format sensitivity."""
    import json

    listed: dict[str, list[str]] = json.loads((data_dir / f"BFCL_v4_{CATEGORY}.json").read_text())
    return {category: ids for category, ids in listed.items() if ids}


def variant_ids(ordered_sources: list[str]) -> list[tuple[str, str, str]]:
    """(task id, config, source task id) for every source task (in BFCL's order) crossed with every config."""
    result, index = [], 0
    for source in ordered_sources:
        for config in configs():
            result.append((f"{CATEGORY}_{index}:{config}:{source}", config, source))
            index += 1
    return result


def system_prompt(config: str, functions: list[dict[str, Any]]) -> str:
    prompt: str = _handler_utils().formulate_system_prompt(format_sensitivity_config=config, functions=functions)
    return prompt


def decode(text: Any, config: str) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """BFCL's decoding of an answer in ``config``'s format: (calls, None), or (None, the checker-style failure)."""
    utils = _handler_utils()
    from bfcl_eval.constants.enums import ReturnFormat
    from bfcl_eval.utils import is_function_calling_format_output

    return_format, has_tag, *_ = utils.parse_prompt_variation_params(config)
    try:
        if not isinstance(text, str):
            raise ValueError("the answer must be the message text in the format the system prompt asks for")
        decoded = utils.default_decode_ast_prompting(text, ReturnFormat(return_format), has_tag)
    except Exception as e:  # BFCL: whatever the decoder raises is a failed decode, scored 0
        return None, {"valid": False, "error": [f"Invalid syntax. Failed to decode AST. {e}"],
                      "error_type": "ast_decoder:decoder_failed"}  # fmt: skip
    if not is_function_calling_format_output(decoded):
        message = "Did not output in the specified format."
        return None, {"valid": False, "error": [message], "error_type": "ast_decoder:decoder_wrong_output_format"}
    return decoded, None
