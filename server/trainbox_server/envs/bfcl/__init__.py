"""The BFCL environment family: BFCL v4's executable multi-turn and single-turn AST categories.

Task ids are BFCL's own (``multi_turn_base_0``, ``simple_python_3``, ``live_simple_0-0-0``); splits are
described in ``bfcl.splits``. ``create`` returns BFCL's default prompting system prompt (python-call
format, JSON function docs) plus the first user turn; ``info["tools"]`` carries the same functions as
OpenAI ``tools`` for models with native tool calling. Actions: see ``bfcl.calls`` (three formats).

Multi-turn (base, miss_func, miss_param, long_context). A step with calls executes them in order against
the episode's environment objects and answers with one ``tool`` message per call (``tool_call_id`` set when
the call came as an OpenAI tool call). A step without calls ends the model's turn: the next user turn
comes back as ``user`` messages; on a miss_func turn that message lists the newly available functions
(BFCL's text) and ``info["tools"]`` / ``info["new_tools"]`` carry them. After the last turn the episode
terminates and the step's reward is the evaluation. As in BFCL, a turn is cut off after
``MAXIMUM_STEP_LIMIT`` (20) call steps, which fails the task.

Error semantics. What BFCL shows the model as an execution error stays an observation: unknown function,
wrong argument names/types, an environment exception — a ``tool`` message ``"Error during execution:
..."``, recorded for the checker exactly as BFCL would. What BFCL cannot even decode is refused with
``InvalidAction`` (the episode continues): a ``<tool_call>``/``tool_calls`` payload that is not valid
JSON, non-literal arguments. Plain prose is not an error: in multi-turn it ends the turn (BFCL: a
message that does not decode ends the turn). Single-turn tasks execute nothing, so there a call that
cannot be checked — no call (except irrelevance tasks), unknown function, positional, unknown, missing or
mistyped arguments — is ``InvalidAction`` naming what is accepted.

Rewards. Multi-turn: BFCL's ``multi_turn_checker`` (state + execution-response checks after every turn).
``sparse`` = 1.0 if the task passes, else 0.0. ``dense`` = turns passed / turns, where "turns passed" is
how many turns the checker got through, in order, before its first failure (a failure leaves the
environment state off the ground-truth path, so later turns are not credited). Single-turn: BFCL's
``ast_checker`` (irrelevance: pass iff no call; live_relevance: pass iff a valid call); dense = sparse.
``evaluate(params)`` uses ``params["sparse"]`` (default: the ``sparse`` create param, default True); the
details always carry both values, the checker's ``error_type`` / ``error_message`` and its findings.

Create param ``on_invalid_action``: ``"error"`` (default, as above) or ``"end_turn"`` (what the reference
does, used by its compatible routes): an action that would be ``InvalidAction`` ends the model's turn
instead — multi-turn: as a message without calls; single-turn: the episode ends, scored 0.0.
"""

from trainbox_server.envs.bfcl.family import BfclFamily, make_family

__all__ = ["BfclFamily", "make_family"]
