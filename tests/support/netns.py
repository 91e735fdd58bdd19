"""Hosts of their own on one machine, for a test that cuts the network between them: a network
namespace per host, each with a veth on one bridge (10.N.0.0/24; the test's own processes talk to
them from 10.N.0.1), and iptables inside a host to partition it from others. Needs root, ``ip``
and ``iptables`` (``available()`` says why not)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess


def available() -> str | None:
    """None when hosts can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"no {tool} on this machine (apt-get install iproute2 iptables)"
    return None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Network:
    """A bridge and ``size`` hosts on it; ``close`` removes them all."""

    def __init__(self, size: int):
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        subnet = random.randrange(100, 250)
        self.bridge = f"cbr{tag}"
        self.gateway = f"10.{subnet}.0.1"
        self.hosts = [f"cn{tag}h{i}" for i in range(size)]
        self.addresses = [f"10.{subnet}.0.{11 + i}" for i in range(size)]
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for i, (host, address) in enumerate(zip(self.hosts, self.addresses)):
                outside, inside = f"cv{tag}{i}", f"cv{tag}{i}p"
                _run("ip", "netns", "add", host)
                _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                _run("ip", "link", "set", inside, "netns", host)
                _run("ip", "link", "set", outside, "master", self.bridge)
                _run("ip", "link", "set", outside, "up")
                _run("ip", "netns", "exec", host, "ip", "addr", "add", f"{address}/24", "dev", inside)
                _run("ip", "netns", "exec", host, "ip", "link", "set", inside, "up")
                _run("ip", "netns", "exec", host, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def command(self, index: int, args: list[str]) -> list[str]:
        """``args`` run inside host ``index``."""
        return ["ip", "netns", "exec", self.hosts[index], *args]

    def partition(self, index: int) -> None:
        """Cut host ``index`` off from the other hosts (the test's processes still reach it)."""
        for other, address in enumerate(self.addresses):
            if other != index:
                _run(*self.command(index, ["iptables", "-A", "INPUT", "-s", address, "-j", "DROP"]))
                _run(*self.command(index, ["iptables", "-A", "OUTPUT", "-d", address, "-j", "DROP"]))

    def heal(self, index: int) -> None:
        _run(*self.command(index, ["iptables", "-F"]))

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
