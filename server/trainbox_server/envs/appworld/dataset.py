"""Build a small AppWorld dataset in AppWorld's own on-disk format, through the AppWorld engine.

AppWorld's real task data comes from ``appworld download data``, which needs the internet. This module
writes a dataset of the same shape that the engine loads and evaluates like the real one, so tests (and
machines without the download) drive real worlds:

    <root>/data/api_docs/{standard,function_calling}/<app>.json          from ApiDocCollection.build()
    <root>/data/base_dbs/<app>.db + model_hashes.json                      every app (api_docs filled in)
    <root>/data/tasks/<task_id>/specs.json                                 instruction, supervisor, datetime
    <root>/data/tasks/<task_id>/dbs/<app>.jsonl + model_hashes.json        the task's changes over base_dbs
    <root>/data/tasks/<task_id>/ground_truth/{metadata,public_data,private_data,answer,test_data}.json
                                            + evaluation.py               AppWorld's "minimal" mode
    <root>/data/datasets/{train,dev,test_normal}.txt                       task ids per split

The world: three people (admin.MainUser); the supervisor, Joyce, has a verified Simple Note account with
a few notes. Each task adds the supervisor app's records (profile, app passwords, the task) and sometimes
notes of its own. Every task needs real API calls: read the Simple Note password from the supervisor app,
log in, then answer from or change the notes. ``TASKS`` also carries a correct solution per task, for
tests and demonstrations.

Runs in the AppWorld venv: ``python -m trainbox_server.envs.appworld.dataset --root DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DATETIME = "2023-05-18T12:00:00"  # the frozen "now" of every task
RECORDS_DATETIME = "2023-05-10T09:30:00"  # when the dataset's records were "created"


def _person(*values: str) -> dict[str, str]:
    fields = ("first_name", "last_name", "email", "phone_number", "birthday", "sex")
    return dict(zip(fields, values, strict=True))


SUPERVISOR = _person("Joyce", "Weaver", "joyce-weav@gmail.com", "3155673041", "1991-03-12", "female")
OTHER_PEOPLE = [
    _person("Brian", "Ramos", "br_ramos@gmail.com", "5025438139", "1988-07-02", "male"),
    _person("Tammy", "Hall", "tammy.hall@gmail.com", "6204318846", "1995-11-23", "female"),
]
SIMPLE_NOTE_PASSWORD = "Wq7!kz2LmP"
OTHER_PASSWORD = "x9Rt#44vQa"

# Base notes of the supervisor: (title, content, tags, pinned).
BASE_NOTES = [
    ("Banana bread", "3 ripe bananas, 2 cups flour, 1 tsp soda. Bake 60 min at 175C.", ["recipe"], False),
    ("Lentil soup", "Red lentils, carrots, cumin. Simmer 25 min.", ["recipe", "dinner"], False),
    ("Q3 roadmap", "Ship the billing revamp; hire two engineers.", ["work"], True),
    ("Reading list", "Piranesi; The Overstory; Thinking in Systems.", ["books"], False),
    ("Standup notes", "Blocked on the API review.", ["work"], False),
]
OTHER_NOTES = [("Gym plan", "Mon/Wed/Fri: legs, push, pull.", ["health"], False)]


@dataclass(frozen=True)
class Requirement:
    text: str
    # AppWorld's labels: does the requirement fail (no_op_fail) or pass (no_op_pass) when the agent does nothing?
    label: str


@dataclass(frozen=True)
class TaskSpec:
    task_id: str  # AppWorld's form: <scenario>_<number>
    split: str  # AppWorld dataset file: train, dev, test_normal
    instruction: str
    answer: Any  # ground-truth answer; None for tasks that change state
    evaluation_body: str  # body of evaluate(test, public_data, private_data, main_user, models, ...)
    requirements: tuple[Requirement, ...]
    solution: str  # a correct solution, as the code an agent would run
    public_data: dict[str, Any] = field(default_factory=dict)
    private_data: dict[str, Any] = field(default_factory=dict)  # what the evaluation checks, unseen by the agent
    extra_notes: tuple[tuple[str, str, list[str], bool], ...] = ()
    difficulty: int = 1


LOGIN = """\
passwords = apis.supervisor.show_account_passwords()
password = next(p["password"] for p in passwords if p["account_name"] == "simple_note")
token = apis.simple_note.login(username="joyce-weav@gmail.com", password=password)["access_token"]
"""


def _count_task(task_id: str, split: str, tag: str, extra: tuple, answer: int) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        split=split,
        instruction=f"How many of my notes in Simple Note are tagged '{tag}'?",
        answer=answer,
        public_data={"tag": tag},
        extra_notes=extra,
        requirements=(
            Requirement("assert the answer matches the number of notes with the tag.", "no_op_fail"),
            Requirement("assert no notes were added, updated or removed.", "no_op_pass"),
        ),
        evaluation_body=f"""
    with test({json.dumps("assert the answer matches the number of notes with the tag.")}):
        test.answer(given_answer(models), ground_truth_answer)
    with test({json.dumps("assert no notes were added, updated or removed.")}):
        added, updated, removed = models.changed_records("simple_note.Note")
        test.case(len(added) + len(updated) + len(removed), "==", 0)
""",
        solution=LOGIN
        + f"""\
notes = apis.simple_note.search_notes(access_token=token, tags=[{tag!r}], page_limit=20)
apis.supervisor.complete_task(answer=len(notes))
""",
    )


def _create_task(task_id: str, split: str, title: str, content: str) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        split=split,
        instruction=f"Create a note in Simple Note titled '{title}' with the content '{content}'.",
        answer=None,
        public_data={"title": title},
        private_data={"content": content},
        requirements=(
            Requirement("assert exactly one note was added and none updated or removed.", "no_op_fail"),
            Requirement("assert the new note has the requested title.", "no_op_fail"),
            Requirement("assert the new note has the requested content.", "no_op_fail"),
            Requirement("assert no answer was given, as the task asks for none.", "no_op_pass"),
        ),
        evaluation_body=f"""
    added, updated, removed = models.changed_records("simple_note.Note")
    with test({json.dumps("assert exactly one note was added and none updated or removed.")}):
        test.case((len(added), len(updated), len(removed)), "==", (1, 0, 0))
    with test({json.dumps("assert the new note has the requested title.")}):
        test.case([note.title for note in added], "==", [public_data.title])
    with test({json.dumps("assert the new note has the requested content.")}):
        test.case([note.content for note in added], "==", [private_data.content], normalize_text=True)
    with test({json.dumps("assert no answer was given, as the task asks for none.")}):
        test.case(given_answer(models), "in", (None, NOT_GIVEN))
""",
        solution=LOGIN
        + f"""\
apis.simple_note.create_note(access_token=token, title={title!r}, content={content!r})
apis.supervisor.complete_task()
""",
    )


def _pin_task(task_id: str, split: str, title: str) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        split=split,
        instruction=f"Pin my Simple Note note titled '{title}'.",
        answer=None,
        public_data={"title": title},
        difficulty=2,
        requirements=(
            Requirement("assert the note with the given title is now pinned.", "no_op_fail"),
            Requirement("assert no other note was added, updated or removed.", "no_op_pass"),
        ),
        evaluation_body=f"""
    added, updated, removed = models.changed_records("simple_note.Note")
    with test({json.dumps("assert the note with the given title is now pinned.")}):
        test.case([(note.title, note.pinned) for note in updated], "==", [(public_data.title, True)])
    with test({json.dumps("assert no other note was added, updated or removed.")}):
        others = [note for note in updated if note.title != public_data.title]
        test.case(len(added) + len(removed) + len(others), "==", 0)
""",
        solution=LOGIN
        + f"""\
notes = apis.simple_note.search_notes(access_token=token, query={title!r}, page_limit=20)
note_id = next(n["note_id"] for n in notes if n["title"] == {title!r})
apis.simple_note.update_note(access_token=token, note_id=note_id, pinned=True)
apis.supervisor.complete_task()
""",
    )


_TRIP_NOTE = ("Lisbon trip", "Pasteis de nata in Belem.", ["travel"], False)
_PIE_NOTE = ("Apple pie", "Crust: butter, flour. Filling: apples, cinnamon.", ["recipe"], False)

TASKS: tuple[TaskSpec, ...] = (
    _count_task("3d9a636_1", "train", "recipe", (_PIE_NOTE,), answer=3),
    _count_task("3d9a636_2", "train", "work", (_TRIP_NOTE,), answer=2),
    _create_task("8c4f2e1_1", "train", "Packing list", "passport, charger, sunscreen"),
    _create_task("8c4f2e1_2", "dev", "Gift ideas", "a cookbook for Brian"),
    _pin_task("b7e05d2_1", "test_normal", "Reading list"),
)

EVALUATION_HEADER = '''\
import json

NOT_GIVEN = "<<NOT_GIVEN>>"


def given_answer(models):
    """The answer the agent passed to apis.supervisor.complete_task (NOT_GIVEN if it did not)."""
    tasks = models.end.supervisor.Task.all()
    return json.loads(tasks[0].answer) if tasks else NOT_GIVEN


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
'''


def build(root: str, force: bool = False) -> list[str]:
    """Write the dataset under ``root`` (AppWorld's APPWORLD_ROOT); return the task ids. Idempotent."""
    data = os.path.join(root, "data")
    stamp = os.path.join(data, ".trainbox-dataset.json")
    want = _fingerprint()
    if not force and os.path.exists(stamp):
        with open(stamp) as file:
            if json.load(file) == want:
                _log(f"dataset up to date in {data}")
                return [task.task_id for task in TASKS]
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    os.environ["APPWORLD_ROOT"] = os.path.abspath(root)  # AppWorld's path_store re-reads it on each use
    from trainbox_server.envs.appworld.speedups import fast_model_subclass_checks

    fast_model_subclass_checks()

    from appworld.common.utils import freeze_time

    started = time.clock_gettime(time.CLOCK_MONOTONIC)  # freezegun leaves this clock alone
    # Records get their timestamps (created_at, ...) from the clock: freeze it before the tasks' "now"
    # so that the data is the same on every build and nothing was created in the tasks' future.
    with freeze_time(datetime.fromisoformat(RECORDS_DATETIME)):
        _log("building api docs")
        _build_api_docs()
        _log("building base databases for all apps")
        _build_base_dbs()
        for task in TASKS:
            _log(f"building task {task.task_id} ({task.split})")
            _build_task(task)
    _write_splits(data)
    with open(stamp, "w") as file:
        json.dump(want, file)
    _log(f"dataset ready in {data} ({len(TASKS)} tasks, {time.clock_gettime(time.CLOCK_MONOTONIC) - started:.1f} s)")
    return [task.task_id for task in TASKS]


def _fingerprint() -> dict[str, Any]:
    import appworld

    with open(__file__, "rb") as file:
        source_hash = hashlib.sha256(file.read()).hexdigest()
    return {"appworld": appworld.__version__, "builder": source_hash}


def _build_api_docs() -> None:
    """Write data/api_docs/{standard,function_calling}/<app>.json as ApiDocCollection.save() does.

    ApiDocCollection.save() also writes the openapi format, which needs openapi_spec_validator (not a
    dependency of AppWorld) and which nothing reads; so the two formats the engine and agents use are
    written here, in the same layout (each doc carries the canary string, which the loader strips).
    """
    from appworld.apps import get_all_apps
    from appworld.collections.api_docs import ApiDocCollection
    from appworld.common.constants import CANARY_STRING

    docs = ApiDocCollection.build(load_apps=tuple(get_all_apps(skip_admin=True)))
    root = os.path.join(os.environ["APPWORLD_ROOT"], "data", "api_docs")
    for app_name, name_to_doc in docs.items():
        standard = {name: {**doc, "canary_string": CANARY_STRING} for name, doc in name_to_doc.items()}
        _write_json(os.path.join(root, "standard", f"{app_name}.json"), standard)
        function_calling = docs.copy().keep_apps([app_name]).function_calling()
        for doc in function_calling:
            doc["canary_string"] = CANARY_STRING
        _write_json(os.path.join(root, "function_calling", f"{app_name}.json"), function_calling)


def _build_base_dbs() -> None:
    from appworld.apps import get_all_apps
    from appworld.apps.model_lib import CachedDBHandler, get_db_home_path
    from appworld.collections.api_docs import ApiDocCollection
    from appworld.collections.models import ModelCollection

    memory = get_db_home_path(storage_type="memory", type="base")
    models = ModelCollection.load(to_db_home_path=memory, load_apps=get_all_apps(), create_db=True)

    # The api_docs app answers apis.api_docs.* from its own table.
    docs = ApiDocCollection.build(load_apps=tuple(get_all_apps(skip_admin=True)))
    api_docs = [
        models.api_docs.ApiDoc(
            app_name_=app_name,
            api_name=doc["api_name"],
            path=doc["path"],
            method=doc["method"],
            description=doc["description"],
            parameters=doc["parameters"],
            response_schemas=doc["response_schemas"],
        )
        for app_name, name_to_doc in docs.items()
        for doc in name_to_doc.values()
    ]
    models.api_docs.ApiDoc.save_all(api_docs)

    people = [SUPERVISOR, *OTHER_PEOPLE]
    passwords = [SIMPLE_NOTE_PASSWORD, *[OTHER_PASSWORD] * len(OTHER_PEOPLE)]
    for person, password in zip(people, passwords, strict=True):
        main_user = models.admin.MainUser(**person)
        main_user.save()
        models.admin.AccountPassword(main_user_id=main_user.id, account_name="simple_note", password=password).save()
    supervisor_user = _simple_note_user(models, SUPERVISOR, SIMPLE_NOTE_PASSWORD)
    other_user = _simple_note_user(models, OTHER_PEOPLE[0], OTHER_PASSWORD)
    _add_notes(models, supervisor_user.id, BASE_NOTES)
    _add_notes(models, other_user.id, OTHER_NOTES)

    base_dir = get_db_home_path(storage_type="disk", type="base")
    models.save(db_home_path=base_dir, format="full", save_model_hashes=True, delete_if_exists=True)
    CachedDBHandler.reset(memory)


def _simple_note_user(models: Any, person: dict[str, str], password: str) -> Any:
    user = models.simple_note.User(
        first_name=person["first_name"],
        last_name=person["last_name"],
        email=person["email"],
        password=password,
        verified=True,
    )
    user.save()
    return user


def _add_notes(models: Any, user_id: int, notes: Any) -> None:
    for title, content, tags, pinned in notes:
        models.simple_note.Note(user_id=user_id, title=title, content=content, tags=tags, pinned=pinned).save()


def _build_task(task: TaskSpec) -> None:
    from appworld.apps import get_all_apps
    from appworld.apps.model_lib import CachedDBHandler, get_db_home_path
    from appworld.collections.models import ModelCollection
    from appworld.common.constants import CANARY_STRING, DB_VERSION

    task_dir = os.path.join(os.environ["APPWORLD_ROOT"], "data", "tasks", task.task_id)
    memory = get_db_home_path(storage_type="memory", type="task_input", task_id=task.task_id)
    base_dir = get_db_home_path(storage_type="disk", type="base")
    # Loading from the base DBs starts each app's change tracker: what we add is saved as the task's changes.
    models = ModelCollection.load(to_db_home_path=memory, from_db_home_path=base_dir, load_apps=get_all_apps())

    supervisor = models.supervisor.Supervisor(**SUPERVISOR)
    supervisor.save()
    models.supervisor.AccountPassword(
        supervisor_id=supervisor.id, account_name="simple_note", password=SIMPLE_NOTE_PASSWORD
    ).save()
    models.supervisor.Task(supervisor_id=supervisor.id, instruction=task.instruction).save()
    if task.extra_notes:
        user = models.simple_note.User.find_one(email=SUPERVISOR["email"])
        _add_notes(models, user.id, task.extra_notes)

    models.save(
        db_home_path=os.path.join(task_dir, "dbs"),
        format="changes",
        save_model_hashes=True,
        delete_if_exists=True,
    )
    CachedDBHandler.reset(memory)

    specs = {
        "instruction": task.instruction,
        "supervisor": {key: SUPERVISOR[key] for key in ("first_name", "last_name", "email", "phone_number")},
        "datetime": DATETIME,
        "db_version": DB_VERSION,
        "canary_string": CANARY_STRING,
    }
    _write_json(os.path.join(task_dir, "specs.json"), specs)
    _write_ground_truth(os.path.join(task_dir, "ground_truth"), task, CANARY_STRING)


def _write_ground_truth(directory: str, task: TaskSpec, canary: str) -> None:
    os.makedirs(directory, exist_ok=True)
    _write_json(os.path.join(directory, "public_data.json"), task.public_data)
    _write_json(os.path.join(directory, "private_data.json"), task.private_data)
    with open(os.path.join(directory, "answer.json"), "w") as file:
        file.write(json.dumps(task.answer))
    tests = [{"requirement": r.text, "label": r.label} for r in task.requirements]
    _write_json(os.path.join(directory, "test_data.json"), tests)
    # Given here so that loading the ground truth does not try to compute them (that needs `black`).
    metadata = {
        "mode": "minimal",
        "difficulty": task.difficulty,
        "num_apps": 1,
        "num_apis": len(set(re.findall(r"apis\.(\w+\.\w+)", task.solution))),
        "num_solution_code_lines": len(task.solution.strip().splitlines()),
    }
    _write_json(os.path.join(directory, "metadata.json"), metadata)
    code = f"# Canary String: {canary}\n" + EVALUATION_HEADER + task.evaluation_body.lstrip("\n")
    with open(os.path.join(directory, "evaluation.py"), "w") as file:
        file.write(code)


def _write_splits(data: str) -> None:
    datasets = os.path.join(data, "datasets")
    os.makedirs(datasets, exist_ok=True)
    for split in ("train", "dev", "test_normal"):
        ids = [task.task_id for task in TASKS if task.split == split]
        with open(os.path.join(datasets, f"{split}.txt"), "w") as file:
            file.write("".join(f"{task_id}\n" for task_id in ids))


def _write_json(path: str, value: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(value, file, indent=2)


def _log(message: str) -> None:
    print(f"appworld-dataset: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="APPWORLD_ROOT to write data/ into")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    build(args.root, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
