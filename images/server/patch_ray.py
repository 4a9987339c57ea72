"""Patch the image's Ray (pinned in server/pyproject.toml) for nodes that start slowly, e.g. arm64 under qemu-user.

Run once at image build, on the build machine's architecture (Ray is not imported, only its files are read):

    python patch_ray.py <site-packages> <path of ray_early_ports.sh> <out>

writes the patched files (and their byte code, compiled for the paths they have in the image) under <out>,
at their paths in the image (<out>/opt/venv/lib/…), for a COPY onto the installed Ray. Every patch is an exact
text replacement that must match once: a Ray upgrade that moves the text fails the build here instead of
silently dropping the patch.

1. `node.py`: Ray waits a hard-coded 30 s for a new raylet to register. It becomes RAY_raylet_start_wait_time_s
   (default 30, as before); our Ray pods set it.
2. `services.py`: the raylet starts its dashboard and runtime-env agents through ray_early_ports.sh (installed
   next to trainbox_server/hosts/), which writes the port files the raylet waits for (a hard-coded 15 s) before
   the agents' slow imports; see that script.
"""

from __future__ import annotations

import importlib.util
import pathlib
import py_compile
import shutil
import sys

AGENTS_STARTED = '    command.append(\n        "--dashboard_agent_command={}".format(\n'


def patches(ray: pathlib.Path, shim: pathlib.Path) -> dict[pathlib.Path, list[tuple[str, str]]]:
    return {
        ray / "_private" / "node.py": [
            (
                "            raylet_start_wait_time_s = 30\n",
                '            raylet_start_wait_time_s = int(os.environ.get("RAY_raylet_start_wait_time_s", "30"))\n',
            )
        ],
        ray / "_private" / "services.py": [
            (
                AGENTS_STARTED,
                f"    dashboard_agent_command = [{str(shim)!r}, *dashboard_agent_command]\n"
                f"    runtime_env_agent_command = [{str(shim)!r}, *runtime_env_agent_command]\n" + AGENTS_STARTED,
            )
        ],
    }


def main(site_packages: str, shim_source: str, out: str) -> None:
    site = pathlib.Path(site_packages)
    shim = site / "trainbox_server" / "hosts" / "ray_early_ports.sh"  # where the image installs it
    placed = _place(out, shim)
    shutil.copyfile(shim_source, placed)
    placed.chmod(0o755)
    for path, replacements in patches(site / "ray", shim).items():
        text = path.read_text()
        for old, new in replacements:
            if text.count(old) != 1:
                raise SystemExit(f"patch_ray: {path} has {text.count(old)} copies of {old!r}, expected 1")
            text = text.replace(old, new)
        path.write_text(text)  # in place first: its byte code must name the path the image has
        py_compile.compile(str(path), doraise=True)  # the image never writes bytecode at run time
        for made in (path, pathlib.Path(importlib.util.cache_from_source(str(path)))):
            shutil.copy2(made, _place(out, made))  # copy2: the byte code checks the source's mtime
        print(f"patch_ray: patched {path}")


def _place(out: str, path: pathlib.Path) -> pathlib.Path:
    target = pathlib.Path(out) / path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


if __name__ == "__main__":
    main(*sys.argv[1:])
