"""Connect to HOST:PORT pairs in parallel; print one JSON object {"host:port": outcome}.

outcome: "open" (accepted), "refused" (RST: the firewall let it through, nothing listens),
"timeout" (dropped: what ufw's default deny does), or "error: ...".
"""

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def probe(target: str) -> str:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error: {exc}"


with ThreadPoolExecutor(max_workers=32) as pool:
    print(json.dumps(dict(zip(sys.argv[1:], pool.map(probe, sys.argv[1:]), strict=True))))
