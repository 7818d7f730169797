"""A throwaway Ray cluster of several nodes on this one machine (tests, benchmarks, trying things out).

Each node is a ``ray start --block`` process in a session of its own with its own temporary folder
and free ports, so a node can be killed as a whole (:meth:`LocalCluster.kill_node`: every process
of that node, at once, as when a machine is lost) and :meth:`LocalCluster.stop` ends exactly the
processes it started (never ``ray stop``, which ends every Ray process of the machine).

    with LocalCluster(tmp, cpus=[1, 1]) as c:
        facescan analyze --engine ray --address c.address …
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Object store per node: enough for a few thousand face chips in flight.
OBJECT_STORE_BYTES = 1_000_000_000


def free_ports(n: int, taken: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1, none of them in ``taken``.

    The sockets stay bound until all ``n`` are chosen: ports asked for one at a time can come back twice,
    and Ray refuses a node whose components share a port."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


def ray_env(env: dict | None = None) -> dict:
    """The environment of the nodes and of drivers connecting to them: no token authentication (a
    cluster on 127.0.0.1 for one user), no usage reports."""
    return {**os.environ, **(env or {}), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


class LocalCluster:
    """A head node and worker nodes on this machine, ``cpus[i]`` logical CPUs each (``cpus[0]``: the head)."""

    def __init__(self, root: str | Path, cpus: list[int] = (1, 1), env: dict | None = None,
                 object_store_bytes: int = OBJECT_STORE_BYTES, timeout: float = 120.0):
        self.root = Path(root)
        self.cpus = list(cpus)
        self.env = ray_env(env)
        self.object_store_bytes = object_store_bytes
        self.timeout = timeout
        self.port = free_ports(1)[0]
        self._ports = {self.port}  # every port handed to a node of this cluster
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen | None] = []
        self._ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, index: int, cpus: int, head: bool) -> subprocess.Popen:
        temp = self.root / f"n{index}"
        temp.mkdir(parents=True, exist_ok=True)
        names = ("node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc", "metrics-export",
                 "runtime-env-agent")
        ports = free_ports(len(names), self._ports)
        self._ports.update(ports)
        cmd = [self._ray, "start", "--block", f"--num-cpus={int(cpus)}", "--num-gpus=0", f"--temp-dir={temp}",
               f"--object-store-memory={self.object_store_bytes}", "--node-ip-address=127.0.0.1",
               *(f"--{name}-port={port}" for name, port in zip(names, ports))]
        if head:
            cmd += ["--head", f"--port={self.port}", "--include-dashboard=false", "--disable-usage-stats"]
        else:
            cmd += [f"--address={self.address}"]
        log = open(temp / "ray-start.log", "wb")  # noqa: SIM115 - the node's own output, kept with it
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def start(self) -> LocalCluster:
        """Start every node and wait until the cluster sees them all alive."""
        self.nodes.append(self._start(0, self.cpus[0], head=True))
        self._wait_port()
        for i, cpus in enumerate(self.cpus[1:], start=1):
            self.nodes.append(self._start(i, cpus, head=False))
        self.wait_nodes(len(self.cpus))
        return self

    def _wait_port(self) -> None:
        """Wait until the head's GCS takes connections."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"the Ray head did not listen on port {self.port} in {self.timeout:.0f} s")

    def _check_running(self) -> None:
        for k, node in enumerate(self.nodes):
            if node is not None and node.poll() is not None:
                log = (self.root / f"n{k}" / "ray-start.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ray node {k} exited ({node.returncode}):\n{log}")

    def add_node(self, cpus: int = 1) -> int:
        """Start one more worker node (as a replacement for a lost one); its index."""
        self.nodes.append(self._start(len(self.nodes), cpus, head=False))
        return len(self.nodes) - 1

    def wait_nodes(self, n: int) -> None:
        """Wait until the head sees ``n`` nodes alive (asked by one short-lived driver process)."""
        code = ("import ray,sys,time; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
                "while sum(1 for n in ray.nodes() if n['Alive']) < int(sys.argv[2]): time.sleep(0.2)")
        waiter = subprocess.Popen([sys.executable, "-c", code, self.address, str(n)], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.timeout
        while waiter.poll() is None and time.monotonic() < deadline:
            try:
                self._check_running()
            except RuntimeError:
                waiter.kill()
                waiter.wait()
                raise
            time.sleep(0.2)
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
            raise TimeoutError(f"the local Ray cluster did not reach {n} nodes in {self.timeout:.0f} s")
        if waiter.returncode != 0:
            raise RuntimeError(f"cannot reach the local Ray cluster: {waiter.stderr.read().decode()[-2000:]}")

    def kill_node(self, index: int) -> None:
        """Kill every process of node ``index`` at once (SIGKILL to its session), as a lost machine."""
        node = self.nodes[index]
        if node is None:
            return
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.wait(timeout=30)
        self.nodes[index] = None

    def stop(self) -> None:
        """End every node this cluster started (workers first, then the head)."""
        for index in reversed(range(len(self.nodes))):
            node = self.nodes[index]
            if node is None:
                continue
            try:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            self.kill_node(index)  # whatever of the node outlived its ray start process

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
