"""Two ``rupali serve`` instances behind Debian's HAProxy with the recipe in ``deploy/haproxy.cfg``, on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.utils.serve import Server, free_port

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
SECRET = "a-storage-secret-every-instance-shares-0123456789"


@dataclass
class Cluster:
    base: str  # the load balancer
    servers: dict[str, Server]  # by the name HAProxy's cookie gives them (app1, app2)


def haproxy() -> str | None:
    return shutil.which("haproxy") or next((path for path in ("/usr/sbin/haproxy",) if Path(path).exists()), None)


@contextmanager
def cluster(tmp_path: Path, extra: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Both instances share this test's database, data directory, Redis settings and one storage secret."""
    binary = haproxy()
    assert binary is not None, "haproxy is not installed"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"RUPALI_STORAGE_SECRET": SECRET, "RUPALI_PUBLIC_URL": base} | (extra or {})
    servers: dict[str, Server] = {}
    balancer = None
    try:
        for name in ("app1", "app2"):
            servers[name] = Server(tmp_path, name, env)
        log = (tmp_path / "haproxy.log").open("w")
        addresses = {"RUPALI_LB_BIND": f"127.0.0.1:{port}", "RUPALI_APP1": f"127.0.0.1:{servers['app1'].port}",
                     "RUPALI_APP2": f"127.0.0.1:{servers['app2'].port}"}
        balancer = subprocess.Popen([binary, "-db", "-f", str(RECIPE)], stdout=log, stderr=log,
                                    env=dict(os.environ) | addresses)
        _wait_balancing(base, balancer, tmp_path / "haproxy.log")
        yield Cluster(base, servers)
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        for server in servers.values():
            server.close()


def _wait_balancing(base: str, balancer: subprocess.Popen[bytes], log: Path) -> None:
    # Both instances up in HAProxy's eyes: two requests without the cookie land on two instances.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if balancer.poll() is not None:
            raise RuntimeError(f"haproxy exited:\n{log.read_text()}")
        try:
            seen = {httpx.get(f"{base}/healthz", timeout=2).cookies.get("RUPALI_INSTANCE") for _ in range(4)}
            if seen == {"app1", "app2"}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"haproxy did not balance over both instances:\n{log.read_text()}")
