"""``python -m trainbox_server serve``: run the sandbox service (uvicorn on 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import uvicorn

BANNER = """
  API docs      {url}/docs            (OpenAPI: {url}/openapi.json)
  environments  curl -s {url}/v1/environments
  task ids      curl -s '{url}/v1/environments/bfcl/tasks?split=train'
  create        curl -s -XPOST {url}/v1/instances -H 'content-type: application/json' \\
                     -d '{{"env_type": "bfcl", "task_id": "multi_turn_base_0"}}'
  Python SDK    TRAINBOX_URL={url} python -c "from trainbox import TrainingSandbox; \\
                     print(TrainingSandbox().get_env_profile('bfcl', 'train')[:3])"
  metrics       curl -s {url}/metrics
  Ctrl-C stops the service (and its local Ray).
"""


def bind(host: str, port: int) -> socket.socket:
    """The HTTP socket, listening (port 0: any free port) before the service starts Ray: Ray's processes
    take ports from a wide range (the workers' default is 10002-19999), and a port already listened on is
    one they cannot take, even with SO_REUSEADDR. Connections made before the service is ready wait in the
    backlog and are answered once it is."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainbox_server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=os.environ.get("TRAINBOX_HOST", "127.0.0.1"))
    port_env = os.environ.get("TRAINBOX_PORT", "8080")
    if not port_env.isdigit():  # e.g. a Kubernetes Service named "trainbox" injects TRAINBOX_PORT=tcp://...
        parser.error(f"TRAINBOX_PORT={port_env!r} is not a port number (set it to one, or pass --port)")
    serve.add_argument("--port", type=int, default=int(port_env), help="0: any free")
    serve.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    serve.add_argument("--ready-file", default=None, help="write the service URL here once it is ready")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--banner", action="store_true", help="print how to use the service once it is ready")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from trainbox_server.service import ServiceConfig, create_app
    from trainbox_server.service.config import SettingsError
    from trainbox_server.service.http_protocol import UpgradeIgnoringProtocol

    try:
        config = ServiceConfig.from_env()
    except SettingsError as exc:
        parser.error(str(exc))
    if args.ray_address:
        config.ray_address = args.ray_address
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    url = f"http://{args.host}:{port}"

    def announce() -> None:
        print(f"trainbox listening on {url}", flush=True)
        if args.banner:
            print(BANNER.format(url=url), flush=True)
        if args.ready_file:
            with open(args.ready_file, "w") as ready:
                ready.write(url)

    app = create_app(config, on_ready=announce)

    print(f"starting trainbox on {url} (Ray: {config.ray_address or 'local'}) ...", file=sys.stderr, flush=True)
    # Idle keep-alive connections stay open longer than clients keep them (httpx: 5 s), so a client never
    # sends a request on a connection the server is closing at that moment (a reset, not an answer).
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=port,
            log_level=args.log_level,
            access_log=False,
            timeout_keep_alive=config.keep_alive,
            http=UpgradeIgnoringProtocol,  # Java's client offers h2c on every request (see http_protocol)
        )
    )
    server.run(sockets=[sock])  # uvicorn starts the app (and Ray), then accepts on the socket
    return 0


if __name__ == "__main__":
    sys.exit(main())
