"""A TCP relay that gives the VM lab host an address on the lab network (make e2e-vm).

The VM sits on qemu's user-mode network; the machine forwards ports of its own lab-network
address (the bridge's gateway) to the VM's 80 and 443 (lab/bin/vm, LAB_VM_HOSTFWD). This relay
runs in a container on the lab network under the VM's public name (a network alias), so pebble
resolves that name with the lab's DNS and its http-01 validation on port 80 reaches the VM's
Nginx, and the control node reaches the VM's 443 at a lab address as it reaches a container's.

    python3 tcp_relay.py 80=172.17.0.1:18080 443=172.17.0.1:18443

Bytes are copied both ways unchanged (TLS ends at the VM's Nginx). Standard library only: it
runs on the lab image's python3.
"""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def serve(listen: int, host: str, port: int) -> asyncio.Server:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(host, port)
        except OSError as error:
            print(f"relay :{listen} -> {host}:{port}: {error}", file=sys.stderr, flush=True)
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))

    return await asyncio.start_server(relay, "0.0.0.0", listen)  # noqa: S104  (the lab network only)


def parse(rule: str) -> tuple[int, str, int]:
    """`LISTEN=HOST:PORT` -> (listen, host, port); a clear error otherwise."""
    try:
        listen, target = rule.split("=", 1)
        host, port = target.rsplit(":", 1)
        return int(listen), host, int(port)
    except ValueError:
        raise SystemExit(f"tcp_relay: bad rule {rule!r}, expected LISTEN=HOST:PORT") from None


async def main(rules: list[str]) -> None:
    if not rules:
        raise SystemExit("usage: tcp_relay.py LISTEN=HOST:PORT [...]")
    servers = [await serve(*parse(rule)) for rule in rules]
    print(f"relaying {' '.join(rules)}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
