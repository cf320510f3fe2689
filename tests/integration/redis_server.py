"""A redis-server of the test's own, on a free loopback port in a temporary directory,
started and stopped (or killed) by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; `with_bus`: one whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


class RedisServer:
    """One redis-server process; `start` again after `kill` reopens the same files."""

    def __init__(self, directory: Path, *options: str, port: int | None = None) -> None:
        self.directory = directory
        self.options = options
        self.port = port or free_port(with_bus="--cluster-enabled" in options)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client = redis.Redis(port=self.port)
                client.ping()
                if client.info("persistence").get("loading", 0) == 0:
                    client.close()
                    return
                client.close()
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def start_cluster(directories: list[Path], *, replicas: int = 0) -> list[RedisServer]:
    """A local Redis Cluster, one node per directory (`replicas` per master), formed
    and answering `cluster_state:ok` on every node; the caller kills the nodes."""
    nodes: list[RedisServer] = []
    try:
        for directory in directories:
            node = RedisServer(directory, "--cluster-enabled", "yes", "--appendonly", "no")
            node.start()
            nodes.append(node)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while not all(cluster_ok(n.port) for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not form")
            time.sleep(0.1)
    except BaseException:
        for node in nodes:
            node.kill()
        raise
    return nodes


def cluster_ok(port: int) -> bool:
    """Whether the node on `port` says the cluster serves every slot."""
    client = redis.Redis(port=port)
    try:
        return str(client.cluster("INFO").get("cluster_state")) == "ok"
    finally:
        client.close()
