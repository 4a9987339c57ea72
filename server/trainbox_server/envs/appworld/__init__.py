"""The AppWorld environment family: AppWorld's real engine, one world per worker process.

Data. The dataset lives under ``APPWORLD_ROOT`` (default ``~/.cache/trainbox/appworld``) in AppWorld's own
layout (``data/tasks``, ``data/base_dbs``, ``data/api_docs``, ``data/datasets``); ``make appworld-data``
downloads it where the internet allows, and ``appworld.dataset`` builds a small one in the same format.
Task ids are AppWorld's (``82e2fac_1``). Splits map to AppWorld's dataset files (``SPLIT_FILES``):
``train`` → ``train.txt``, ``val`` → ``dev.txt``, ``test`` → ``test_normal.txt`` then ``test_challenge.txt``
(AppWorld's own, fixed splits: nothing is reshuffled).

Episode. ``create`` opens ``AppWorld(task_id)`` and returns a system prompt (how to act: one python block
per reply, the ``apis`` object, ``apis.supervisor.complete_task``) and a user message (the supervisor's
name, email, phone and the task instruction); ``info["tools"]`` carries the ``appworld`` tool for models
with native tool calling. ``step`` runs the code of the assistant message (see ``appworld.messages``:
OpenAI ``tool_calls`` / ``<tool_call>`` text naming ``appworld`` with a ``code`` argument, else the first
fenced python block) through ``world.execute`` and returns the output; the episode terminates when the
task is marked complete, and that step's reward is the evaluation (0.0 before).

Rewards: AppWorld's evaluator (the task's ``evaluation.py`` against the world's database changes), run in
a separate evaluator process (``appworld.judge``): the world's worker is sandboxed, opens its world without
the ground truth and cannot read it (``appworld.view``); it hands the world's state over as data.
sparse = 1.0 if every requirement passes else 0.0; dense = passed / total requirements (the reference's
default). ``evaluate(params)`` uses ``params["sparse"]``, else the ``sparse`` create param (default False);
details carry both, and each failing requirement with its trace.

Create params: ``sparse`` (bool), ``step_timeout`` (seconds, AppWorld's own SIGALRM timeout for one
execution; past it the output says so and the episode goes on; default 20, below the runtime's kill),
``max_interactions`` (AppWorld's cap on executions, default 1000). Other keys are ignored.

Process model. AppWorld keeps global state (``close_all`` on every new world, freezegun's process-wide
clock, SIGALRM), so ``max_instances_per_process = 1``; ``warm()`` pays the imports (and one throw-away
world when data is present) before any create. World outputs go to a per-process temporary directory
(the data root may be read-only, and two worlds of one task must not share AppWorld's output folder),
removed at close or exit, and swept at the next warm-up if the process was killed.
"""

from trainbox_server.envs.appworld.family import AppWorldFamily, make_family

__all__ = ["AppWorldFamily", "make_family"]
