"""The way from pods to the apiserver: a TCP relay on the amd64 node's bridge address to the apiserver on 127.0.0.1.

The apiserver listens on loopback only, which a pod's own network namespace cannot reach. This relay listens
on the node's address (198.18.x.1, a test-bed address the pods route to) and forwards bytes unchanged to the
apiserver, so TLS stays end to end (the apiserver's certificate names the `kubernetes` Service address). The
test bed points the `kubernetes` Service's EndpointSlice at it (nodeset.py), which is how an in-cluster client
(KUBERNETES_SERVICE_HOST=198.19.0.1) gets here through kube-proxy.

Run as a script (standard library only): ``python apigate.py LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT``.
"""

from __future__ import annotations

import asyncio
import sys

BUFFER = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_server(relay, *listen, reuse_address=True)
    print(f"apiserver gateway {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(_serve((argv[0], int(argv[1])), (argv[2], int(argv[3]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
