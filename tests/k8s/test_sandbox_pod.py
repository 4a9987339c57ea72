"""The model-code sandbox inside a real pod: the appworld image on the test bed's real amd64 node, with the
security context the operator gives Ray worker pods (non-root, no capabilities, no privilege escalation).
Inside, a real world runs sandboxed (unprivileged uid, scrubbed environment, no ground truth in view) and
the evaluator process scores it."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from trainbox_operator.desired import SANDBOX_SECURITY

from .images import published
from .kube import wait_until

pytestmark = pytest.mark.k8s

SCRIPT = """
import asyncio, subprocess
subprocess.run(["/opt/venvs/appworld/bin/python", "-m", "trainbox_server.envs.appworld.dataset", "--root", "/tmp/aw"],
               check=True, stdout=subprocess.DEVNULL)
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

def code(text):
    return {"role": "assistant", "content": "```python\\n" + text + "\\n```"}

async def main():
    family = FamilyConfig("appworld", warm=1, create_timeout=300, step_timeout=60, env={"APPWORLD_ROOT": "/tmp/aw"})
    async with Runtime(RuntimeConfig(families={"appworld": family})) as rt:
        task = (await rt.task_ids("appworld", "train"))[0]
        answer = open(f"/tmp/aw/data/tasks/{task}/ground_truth/answer.json").read().strip()
        made = await rt.create("appworld", task)
        probe = "import os\\np = os.sys.modules['posix']\\nprint('UID', p.getuid(), 'TOKEN' in str(p.environ))\\n"
        probe += f"print('LISTING', p.listdir('/appworld/data/tasks/{task}'))"
        print((await rt.step(made.instance_id, code(probe))).messages[-1]["content"])
        done = await rt.step(made.instance_id, code(f"apis.supervisor.complete_task(answer={answer})"))
        print("REWARD", done.reward, done.terminated)

asyncio.run(main())
"""


def test_a_world_runs_sandboxed_in_a_real_pod(kube_api: k8s.ApiClient, node_namespace: str) -> None:
    core = k8s.CoreV1Api(kube_api)
    container = {
        "name": "main",
        "image": published()["appworld"]["ref"],
        "imagePullPolicy": "IfNotPresent",
        "command": ["/opt/venv/bin/python", "-c", SCRIPT],
        "env": [{"name": "TRAINBOX_TOKEN", "value": "pod-secret-token"}],
        "securityContext": SANDBOX_SECURITY,
    }
    pod = {
        "metadata": {"name": "sandbox"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        },
    }
    core.create_namespaced_pod(node_namespace, pod)

    def ended() -> str | None:
        phase = core.read_namespaced_pod("sandbox", node_namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until("the sandbox pod ends", ended, timeout=900)
    logs = core.read_namespaced_pod_log("sandbox", node_namespace)
    assert phase == "Succeeded", logs[-3000:]
    assert "UID 65534 False" in logs  # nobody inside, and the pod's token is not in the worker's environment
    assert "specs.json" in logs and "ground_truth" not in logs.split("LISTING")[1].split("\n")[0]
    assert "REWARD 1.0 True" in logs
