"""The service's typed settings: every ``TRAINBOX_*`` value is checked at start (a bad one names its variable and
what it accepts), and the defaults the CRDs, the chart and the operator repeat are the service's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from trainbox_operator import desired, instances
from trainbox_server.__main__ import main
from trainbox_server.hosts.host import HostSettings
from trainbox_server.service.config import ServiceConfig, SettingsError, variable

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = ServiceConfig()


@pytest.fixture(autouse=True)
def no_trainbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TRAINBOX_"):
            monkeypatch.delenv(name)


def crd_spec(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / f"trainbox.dev_{name}.yaml").read_text())
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec["properties"]


SANDBOX_DEFAULTS = {k: v["default"] for k, v in crd_spec("trainingsandboxes")["instanceDefaults"]["properties"].items()}
INSTANCE_SPEC = crd_spec("traininginstances")
VALUES = yaml.safe_load((REPO / "charts" / "trainbox" / "values.yaml").read_text())
CHART_DEFAULTS = VALUES["sandbox"]["instanceDefaults"]


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("TrainingSandbox idleTTLSeconds", SANDBOX_DEFAULTS["idleTTLSeconds"], DEFAULTS.idle_ttl),
        ("TrainingSandbox maxLifetimeSeconds", SANDBOX_DEFAULTS["maxLifetimeSeconds"], DEFAULTS.max_lifetime),
        ("TrainingInstance ttlSeconds default", INSTANCE_SPEC["ttlSeconds"]["default"], DEFAULTS.idle_ttl),
        ("TrainingInstance ttlSeconds maximum", INSTANCE_SPEC["ttlSeconds"]["maximum"], DEFAULTS.max_ttl),
        ("TrainingInstance maxLifetimeSeconds max", INSTANCE_SPEC["maxLifetimeSeconds"]["maximum"], DEFAULTS.max_ttl),
        ("operator: TrainingInstance ttlSeconds", instances.TTL_SECONDS, DEFAULTS.idle_ttl),
        ("operator: idleTTLSeconds", desired.INSTANCE_DEFAULTS["idleTTLSeconds"], DEFAULTS.idle_ttl),
        ("operator: maxLifetimeSeconds", desired.INSTANCE_DEFAULTS["maxLifetimeSeconds"], DEFAULTS.max_lifetime),
        ("host: idle_ttl", HostSettings("h").idle_ttl, DEFAULTS.idle_ttl),
        ("host: max_lifetime", HostSettings("h").max_lifetime, DEFAULTS.max_lifetime),
        ("host: max_ttl", HostSettings("h").max_ttl, DEFAULTS.max_ttl),
        ("host: max_live", HostSettings("h").max_live, DEFAULTS.max_live_per_host),
        ("host: sweep_interval", HostSettings("h").sweep_interval, DEFAULTS.sweep_interval),
    ],
)  # fmt: skip
def test_defaults_written_elsewhere_are_the_services(where: str, value: object, expected: float) -> None:
    assert value == expected, f"{where} is {value}, the service's default is {expected} (service.config)"


@pytest.mark.parametrize("key", sorted(desired.INSTANCE_DEFAULTS))
def test_the_chart_and_the_operator_say_what_the_crd_says(key: str) -> None:
    """maxLiveInstances is a sandbox's own default (10,000), smaller than a bare service's TRAINBOX_MAX_LIVE."""
    crd = SANDBOX_DEFAULTS[key]
    assert CHART_DEFAULTS[key] == crd, f"charts/trainbox/values.yaml instanceDefaults.{key} differs from the CRD"
    assert desired.INSTANCE_DEFAULTS[key] == crd, f"trainbox_operator.desired.INSTANCE_DEFAULTS[{key!r}] differs"


def test_every_variable_the_operator_sets_is_a_setting() -> None:
    """The front's environment, as the operator writes it, names settings the service reads (one exception:
    TRAINBOX_NODE_IP, read where Ray is started)."""
    body = {
        "apiVersion": "trainbox.dev/v1alpha1",
        "kind": "TrainingSandbox",
        "metadata": {"name": "sb", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"image": "i", "workerGroups": [{"arch": "amd64"}], "authSecretRef": {"name": "s"},
                 "appworldData": {"hostPath": "/d"}},
    }  # fmt: skip
    env = desired.front_deployment(body)["spec"]["template"]["spec"]["containers"][0]["env"]
    names = {e["name"] for e in env if e["name"].startswith("TRAINBOX_")} - {"TRAINBOX_NODE_IP"}
    settings = {variable(field) for field in ServiceConfig.model_fields}
    assert set(desired.INSTANCE_ENV.values()) <= names
    assert names <= settings, f"the operator sets {sorted(names - settings)}, which the service does not read"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("IDLE_TTL", "five", "TRAINBOX_IDLE_TTL: Input should be a valid number"),
        ("IDLE_TTL", "0", "TRAINBOX_IDLE_TTL: Input should be greater than 0; accepted: seconds"),
        ("MAX_LIVE", "many", "TRAINBOX_MAX_LIVE: Input should be a valid integer"),
        ("HOSTS_PER_NODE", "0", "TRAINBOX_HOSTS_PER_NODE: Input should be greater than or equal to 1"),
        ("RAY_JOIN_AS_NODE", "maybe", "TRAINBOX_RAY_JOIN_AS_NODE: Input should be a valid boolean"),
        ("FAMILIES", "{bfcl: 1}", "TRAINBOX_FAMILIES: not JSON (Expecting property name"),
        ("FAMILIES", '{"nope": {}}', "TRAINBOX_FAMILIES: unknown families ['nope']; accepted: a JSON object"),
        ("FAMILIES", '{"bfcl": 3}', "TRAINBOX_FAMILIES (bfcl): Input should be a valid dictionary"),
        ("FAMILIES", '{"bfcl": {"wram": 3}}', "TRAINBOX_FAMILIES (bfcl.wram): Extra inputs are not permitted"),
        ("FAMILIES", '{"bfcl": {"warm": "x"}}', "TRAINBOX_FAMILIES (bfcl.warm): Input should be a valid integer"),
        ("ENVIRONMENTS", "bfcl,webshopp", "TRAINBOX_ENVIRONMENTS: unknown families ['webshopp']; accepted: comma"),
        ("TOKEN_FILE", "/nonexistent/token", "TRAINBOX_TOKEN_FILE: cannot read /nonexistent/token"),
        ("KEEP_ALIVE", "1.5", "TRAINBOX_KEEP_ALIVE: Input should be a valid integer"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(f"TRAINBOX_{name}", value)
    with pytest.raises(SettingsError) as caught:
        ServiceConfig.from_env()
    assert says in str(caught.value)


def test_good_values_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    for name, value in {
        "IDLE_TTL": "12.5",
        "MAX_LIVE": "7",
        "RAY_ADDRESS": "",  # empty: unset (a local Ray)
        "RAY_JOIN_AS_NODE": "yes",
        "ENVIRONMENTS": " bfcl, appworld ",
        "FAMILIES": '{"appworld": {"warm": 4, "env": {"APPWORLD_ROOT": "/d"}}, "bfcl@2025.10.1": {"processes": 3}}',
        "TOKEN_FILE": str(tmp_path / "token"),
        "PORT": "tcp://198.18.0.1:8080",  # a Kubernetes Service link variable: not a setting, ignored
    }.items():
        monkeypatch.setenv(f"TRAINBOX_{name}", value)
    config = ServiceConfig.from_env()
    assert (config.idle_ttl, config.max_live, config.ray_address, config.ray_join_as_node) == (12.5, 7, None, True)
    assert config.environments == ("bfcl", "appworld") and config.token == "s3cret"
    assert config.family_overrides() == {
        "appworld": {"warm": 4, "env": {"APPWORLD_ROOT": "/d"}},
        "bfcl@2025.10.1": {"processes": 3},
    }
    assert config.host_deadlines()["step"] == 30.0 + config.host_call_margin


def test_direct_construction_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBOX_IDLE_TTL", "5")
    assert ServiceConfig().idle_ttl == DEFAULTS.idle_ttl and ServiceConfig.from_env().idle_ttl == 5


def test_serve_refuses_a_bad_setting_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINBOX_FAMILIES", '{"bfcl": {"warm": -1, "nonsense": 1}}')
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "TRAINBOX_FAMILIES (bfcl.nonsense): Extra inputs are not permitted" in err
