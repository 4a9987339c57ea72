"""Patch the image's Ray (pinned in server/pyproject.toml) for nodes that start slowly, e.g. arm64 under qemu-user.

Run once at image build: `/opt/venv/bin/python patch_ray.py <path of ray_early_ports.sh>`. Every patch is an
exact text replacement that must match once: a Ray upgrade that moves the text fails the build here instead of
silently dropping the patch.

1. `node.py`: Ray waits a hard-coded 30 s for a new raylet to register. It becomes RAY_raylet_start_wait_time_s
   (default 30, as before); our Ray pods set it.
2. `services.py`: the raylet starts its dashboard and runtime-env agents through ray_early_ports.sh (installed
   next to trainbox_server/hosts/), which writes the port files the raylet waits for (a hard-coded 15 s) before
   the agents' slow imports; see that script.
"""

from __future__ import annotations

import pathlib
import py_compile
import shutil
import sys

import ray
import trainbox_server.hosts

RAY = pathlib.Path(ray.__file__).parent
SHIM = pathlib.Path(trainbox_server.hosts.__file__).parent / "ray_early_ports.sh"
AGENTS_STARTED = '    command.append(\n        "--dashboard_agent_command={}".format(\n'
PATCHES = {
    RAY / "_private" / "node.py": [
        (
            "            raylet_start_wait_time_s = 30\n",
            '            raylet_start_wait_time_s = int(os.environ.get("RAY_raylet_start_wait_time_s", "30"))\n',
        )
    ],
    RAY / "_private" / "services.py": [
        (
            AGENTS_STARTED,
            f"    dashboard_agent_command = [{str(SHIM)!r}, *dashboard_agent_command]\n"
            f"    runtime_env_agent_command = [{str(SHIM)!r}, *runtime_env_agent_command]\n" + AGENTS_STARTED,
        )
    ],
}


def main(shim_source: str) -> None:
    shutil.copyfile(shim_source, SHIM)
    SHIM.chmod(0o755)
    for path, replacements in PATCHES.items():
        text = path.read_text()
        for old, new in replacements:
            if text.count(old) != 1:
                raise SystemExit(f"patch_ray: {path} has {text.count(old)} copies of {old!r}, expected 1")
            text = text.replace(old, new)
        path.write_text(text)
        py_compile.compile(str(path), doraise=True)  # the image never writes bytecode at run time
        print(f"patch_ray: patched {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
