"""Private Redis topologies built from the machine's ``redis-server`` and ``redis-cli``: a
Redis Cluster (three primaries, one replica each) and a Sentinel setup (one master, one
replica, three sentinels), each with a failover helper that SIGTERMs the master by its PID and
times how long the replica takes to replace it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .process import (
    HOST,
    ServerProcess,
    ServerStartError,
    Started,
    find_executable,
    free_ports,
    make_workdir,
    stop_all,
    wait_until,
)

if TYPE_CHECKING:
    import redis
    import redis.cluster
    import redis.sentinel

CLUSTER_SLOTS = 16384

# Options every node shares. No RDB or AOF: a node's data lives only as long as the process,
# and a restarted node gets its data again from its primary. No delay before a diskless full
# sync: a replica that (re)joins is in sync at once instead of after Redis's default 5 s.
_COMMON = ("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")


def _connect(port: int, timeout: float = 1.0) -> Any:
    # Any: redis-py leaves most commands untyped; these helpers parse what they read.
    import redis

    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )


def _info(port: int, section: str) -> dict[str, Any]:
    client = _connect(port)
    try:
        return dict(client.info(section))
    finally:
        client.close()


def _command(port: int, *args: str | bytes) -> Any:
    client = _connect(port)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


@dataclass
class RedisNode:
    """One ``redis-server`` process on a loopback port (``bus_port`` is its cluster bus)."""

    process: ServerProcess
    port: int
    bus_port: int | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def client(self, **options: Any) -> redis.Redis:
        """A plain redis-py client connected to this node only."""
        import redis

        return redis.Redis(host=HOST, port=self.port, **options)

    def role(self) -> str:
        """``master``, ``slave`` or ``sentinel``, as the node reports itself."""
        return str(_command(self.port, "ROLE")[0])

    def start(self, *, timeout: float = 30.0) -> None:
        """Start (or restart, with the same command and directory) and wait for PING."""
        self.process.start()
        self.process.wait_ready(lambda: _command(self.port, "PING"), timeout=timeout)


@dataclass(frozen=True)
class FailoverReport:
    """What ``fail_over`` saw: the master it stopped, the replica that replaced it, and the
    seconds from the SIGTERM until the replica served as master (``seconds``), until the
    stopped process had exited (``exit_seconds``: Redis waits for its replicas to catch up
    before it exits on SIGTERM), and until the stopped node was back as a replica
    (``rejoin_seconds``, ``None`` when it was left stopped)."""

    old_master: tuple[str, int]
    new_master: tuple[str, int]
    seconds: float
    exit_seconds: float
    rejoin_seconds: float | None


class _ExitClock:
    """When a SIGTERMed process was first seen gone, checked between failover polls."""

    def __init__(self, process: ServerProcess, started: float) -> None:
        self.process = process
        self.started = started
        self.seconds: float | None = None

    def check(self) -> None:
        if self.seconds is None and not self.process.running:
            self.seconds = time.monotonic() - self.started

    def wait(self, timeout: float) -> float:
        """Seconds from the signal until the exit (reaping the process)."""
        self.process.wait_exit(timeout)
        self.check()
        return self.seconds if self.seconds is not None else time.monotonic() - self.started


def _without_replicaof(argv: Sequence[str]) -> list[str]:
    kept: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg == "--replicaof":
            skip = 2
        else:
            kept.append(arg)
    return kept


def _node(name: str, port: int, args: Sequence[str], workdir: Path) -> RedisNode:
    directory = workdir / name
    directory.mkdir()
    argv = [
        find_executable("redis-server"),
        *args,
        "--port",
        str(port),
        "--bind",
        HOST,
        "--dir",
        str(directory),
        *_COMMON,
    ]
    return RedisNode(ServerProcess(name, argv, workdir=directory), port)


# --------------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class _ClusterEntry:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    connected: bool
    slots: int


def _cluster_nodes(port: int) -> list[_ClusterEntry]:
    entries = []
    for line in str(_command(port, "CLUSTER", "NODES")).splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@")[0]
        slots = 0
        for spec in fields[8:]:
            if spec.startswith("["):  # a slot being migrated, not owned
                continue
            first, _, last = spec.partition("-")
            slots += int(last or first) - int(first) + 1
        entries.append(
            _ClusterEntry(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1]) if ":" in address else 0,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                connected=fields[7] == "connected",
                slots=slots,
            )
        )
    return entries


class RedisClusterSetup(Started):
    """A running Redis Cluster of ``len(nodes)`` nodes: half primaries holding all 16384
    slots, half their replicas. Roles change with failovers: ask ``primaries()``."""

    def __init__(self, nodes: list[RedisNode], workdir: Path, node_timeout_ms: int) -> None:
        self.nodes = nodes
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, for a cluster client's startup nodes."""
        return [node.address for node in self.nodes]

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client seeded with every node."""
        from redis.cluster import ClusterNode, RedisCluster

        seeds = [
            ClusterNode(HOST, node.port)  # type: ignore[no-untyped-call]
            for node in self.nodes
        ]
        return RedisCluster(startup_nodes=seeds, **options)

    def _running(self) -> Iterator[RedisNode]:
        return (node for node in self.nodes if node.process.running)

    def _by_port(self, port: int) -> RedisNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no node of this cluster listens on {port}")

    def primaries(self) -> list[RedisNode]:
        """The running nodes that hold slots as primaries now, as a running node sees it."""
        view = _cluster_nodes(next(self._running()).port)
        return [
            self._by_port(entry.port)
            for entry in view
            if "master" in entry.flags and entry.slots and not entry.flags & {"fail", "fail?"}
        ]

    def replica_of(self, primary: RedisNode) -> RedisNode:
        """The (first) running replica of ``primary``."""
        view = _cluster_nodes(primary.port)
        (own,) = (entry for entry in view if "myself" in entry.flags)
        for entry in view:
            if entry.master_id == own.node_id and not entry.flags & {"fail", "fail?"}:
                return self._by_port(entry.port)
        raise LookupError(f"primary on port {primary.port} has no live replica")

    def primary_for_key(self, key: str | bytes) -> RedisNode:
        """The primary that holds ``key``'s hash slot."""
        port = next(self._running()).port
        slot = int(_command(port, "CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in _command(port, "CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return self._by_port(int(master[1]))
        raise LookupError(f"no node holds slot {slot}")

    def is_healthy(self) -> bool:
        """Every node runs and all agree: all slots served, every node either a primary
        holding slots or the replica of one, none failing; and every replica's link to its
        primary is up."""
        if not all(node.process.running for node in self.nodes):
            return False
        views = set()
        for node in self.nodes:
            info = str(_command(node.port, "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info or f"cluster_slots_ok:{CLUSTER_SLOTS}" not in info:
                return False
            view = _cluster_nodes(node.port)
            if len(view) != len(self.nodes):
                return False
            for entry in view:
                if entry.flags & {"fail", "fail?", "handshake", "noaddr"}:
                    return False
                if "myself" not in entry.flags and not entry.connected:
                    return False
                # A node that joined as a replica shows as an empty master to its peers
                # until gossip tells them otherwise.
                if "master" in entry.flags and not entry.slots:
                    return False
            views.add(frozenset((entry.node_id, entry.master_id, entry.slots) for entry in view))
            replication = _info(node.port, "replication")
            if replication["role"] == "slave" and (
                replication.get("master_link_status") != "up"
                or replication.get("master_sync_in_progress")
            ):
                return False
        return len(views) == 1

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until ``is_healthy``; ``TimeoutError`` past ``timeout`` seconds."""
        wait_until(self.is_healthy, timeout=timeout, interval=0.1, what="Redis Cluster healthy")

    def fail_over(
        self, primary: RedisNode | None = None, *, rejoin: bool = True, timeout: float = 60.0
    ) -> FailoverReport:
        """SIGTERM ``primary`` (default: the first primary) by its PID and wait until its
        replica serves its slots as primary and every running node sees the cluster whole.
        With ``rejoin`` the stopped node is then started again and waited for until it is a
        replica in sync, so the next test finds a whole cluster."""
        primary = primary or self.primaries()[0]
        replica = self.replica_of(primary)
        started = time.monotonic()
        primary.process.signal(signal.SIGTERM)
        exited = _ExitClock(primary.process, started)

        def replica_took_over() -> bool:
            exited.check()
            if replica.role() != "master":
                return False
            return all(
                "cluster_state:ok" in str(_command(node.port, "CLUSTER", "INFO"))
                for node in self._running()
                if node is not primary
            )

        wait_until(replica_took_over, timeout=timeout, interval=0.02, what="cluster failover")
        seconds = time.monotonic() - started
        exit_seconds = exited.wait(timeout)
        rejoin_seconds = None
        if rejoin:
            primary.start()
            self.wait_healthy(timeout)
            if primary.role() != "slave":
                raise RuntimeError(f"node {primary.port} came back as {primary.role()}")
            rejoin_seconds = time.monotonic() - started
        return FailoverReport(
            primary.address, replica.address, seconds, exit_seconds, rejoin_seconds
        )

    def stop(self) -> None:
        """Stop every node by PID and delete the cluster's directory."""
        stop_all(node.process for node in self.nodes)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis_cluster(
    *, primaries: int = 3, node_timeout_ms: int = 2000, timeout: float = 60.0
) -> RedisClusterSetup:
    """Start ``2 * primaries`` cluster-enabled nodes on free loopback ports (client and bus
    ports both chosen), join them with ``redis-cli --cluster create --cluster-replicas 1``
    and wait until every replica is in sync.

    ``node_timeout_ms`` is how long a primary may be unreachable before its replica is
    elected in its place: Redis's default of 15 s would make every failover test wait that
    long. Raises ``ServerStartError`` (with the failing node's log tail) when it cannot.
    """
    if primaries < 3:
        raise ValueError(f"a Redis Cluster needs at least 3 primaries, not {primaries}")
    redis_cli = find_executable("redis-cli")
    workdir = make_workdir("redis-cluster")
    nodes: list[RedisNode] = []
    try:
        ports = free_ports(4 * primaries)
        for index in range(2 * primaries):
            port, bus_port = ports[2 * index], ports[2 * index + 1]
            node = _node(
                f"node-{index}",
                port,
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(bus_port),
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                ],
                workdir,
            )
            node.bus_port = bus_port
            nodes.append(node)
            node.process.start()
        for node in nodes:
            node.process.wait_ready(partial(_command, node.port, "PING"), timeout=timeout)
        created = subprocess.run(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"{HOST}:{node.port}" for node in nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if created.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed with code {created.returncode}:\n"
                f"{created.stdout[-3000:]}{created.stderr[-3000:]}"
            )
        cluster = RedisClusterSetup(nodes, workdir, node_timeout_ms)
        try:
            cluster.wait_healthy(timeout)
        except TimeoutError as exc:
            tails = "\n".join(node.process.log_tail(10) for node in nodes)
            raise ServerStartError(f"{exc}\n{tails}") from exc
    except BaseException:
        stop_all(node.process for node in nodes)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return cluster


# -------------------------------------------------------------------------------- sentinel

_SENTINEL_CONFIG = """\
port {port}
bind {host}
dir {dir}
sentinel monitor {service} {host} {master_port} {quorum}
sentinel down-after-milliseconds {service} {down_after_ms}
sentinel failover-timeout {service} {failover_timeout_ms}
sentinel parallel-syncs {service} 1
"""


class RedisSentinelSetup(Started):
    """A running master, its replica and three sentinels that follow ``service_name``.
    ``master`` and ``replica`` name the initial roles; failovers swap them (ask
    ``current_master()``)."""

    def __init__(
        self,
        master: RedisNode,
        replica: RedisNode,
        sentinels: list[RedisNode],
        workdir: Path,
        service_name: str,
    ) -> None:
        self.master = master
        self.replica = replica
        self.sentinels = sentinels
        self.workdir = workdir
        self.service_name = service_name

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel."""
        return [sentinel.address for sentinel in self.sentinels]

    def client(self, **options: Any) -> redis.sentinel.Sentinel:
        """A redis-py ``Sentinel`` over all three sentinels; ``master_for(service_name)``
        gives a client that follows the master."""
        from redis.sentinel import Sentinel

        return Sentinel(self.sentinel_addresses, **options)  # type: ignore[no-untyped-call]

    def _data_nodes(self) -> tuple[RedisNode, RedisNode]:
        return (self.master, self.replica)

    def current_master(self) -> RedisNode:
        """The data node every sentinel names as master now."""
        ports = {self._master_port_seen_by(sentinel) for sentinel in self.sentinels}
        if len(ports) != 1:
            raise RuntimeError(f"the sentinels disagree on the master: ports {sorted(ports)}")
        (port,) = ports
        for node in self._data_nodes():
            if node.port == port:
                return node
        raise LookupError(f"the sentinels name port {port}, not a node of this setup")

    def _master_port_seen_by(self, sentinel: RedisNode) -> int:
        _host, port = _command(
            sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
        )
        return int(port)

    def config_epoch(self) -> int:
        """The highest configuration epoch the sentinels know for ``service_name``: every
        failover they carry out raises it by one."""
        epochs = []
        for sentinel in self.sentinels:
            client = _connect(sentinel.port)
            try:
                epochs.append(int(client.sentinel_master(self.service_name)["config-epoch"]))
            finally:
                client.close()
        return max(epochs)

    def is_healthy(self) -> bool:
        """Every process runs, every sentinel names the same master, knows the replica and
        the two other sentinels, and the replica's link to the master is up."""
        if not all(node.process.running for node in (*self._data_nodes(), *self.sentinels)):
            return False
        master = self.current_master()
        if master.role() != "master":
            return False
        for sentinel in self.sentinels:
            client = _connect(sentinel.port)
            try:
                state = client.sentinel_master(self.service_name)
                replicas = client.sentinel_slaves(self.service_name)
            finally:
                client.close()
            if (
                state["flags"] != "master"
                or state["num-other-sentinels"] != len(self.sentinels) - 1
            ):
                return False
            if [replica["flags"] for replica in replicas].count("slave") != 1:
                return False
        replica = self.replica if master is self.master else self.master
        replication = _info(replica.port, "replication")
        return bool(
            replication["role"] == "slave"
            and replication.get("master_port") == master.port
            and replication.get("master_link_status") == "up"
            and not replication.get("master_sync_in_progress")
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until ``is_healthy``; ``TimeoutError`` past ``timeout`` seconds."""
        wait_until(self.is_healthy, timeout=timeout, interval=0.1, what="Sentinel setup healthy")

    def fail_over(self, *, rejoin: bool = True, timeout: float = 60.0) -> FailoverReport:
        """SIGTERM the current master by its PID and wait until every sentinel names the
        replica and the replica serves as master. With ``rejoin`` the stopped node is then
        started again and waited for until the sentinels made it a replica in sync."""
        master = self.current_master()
        replica = self.replica if master is self.master else self.master
        started = time.monotonic()
        master.process.signal(signal.SIGTERM)
        exited = _ExitClock(master.process, started)

        def replica_took_over() -> bool:
            exited.check()
            return replica.role() == "master" and all(
                self._master_port_seen_by(sentinel) == replica.port for sentinel in self.sentinels
            )

        wait_until(replica_took_over, timeout=timeout, interval=0.02, what="Sentinel failover")
        seconds = time.monotonic() - started
        exit_seconds = exited.wait(timeout)
        rejoin_seconds = None
        if rejoin:
            # Back as a replica of the new master, as an operator would bring it back: started
            # as a master, the sentinels would leave it one for 8 s (four hello periods)
            # before they turn it into a replica.
            master.process.argv = [*_without_replicaof(master.process.argv), "--replicaof"]
            master.process.argv += [HOST, str(replica.port)]
            master.start()
            self.wait_healthy(timeout)
            rejoin_seconds = time.monotonic() - started
        return FailoverReport(
            master.address, replica.address, seconds, exit_seconds, rejoin_seconds
        )

    def stop(self) -> None:
        """Stop the sentinels first (so none starts a failover while the data nodes go),
        then the data nodes, by PID, and delete the setup's directory."""
        stop_all(sentinel.process for sentinel in self.sentinels)
        stop_all(node.process for node in self._data_nodes())
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis_sentinel(
    *,
    service_name: str = "selinon-like",
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
    timeout: float = 60.0,
) -> RedisSentinelSetup:
    """Start a master, a replica of it and three sentinels (quorum 2) that monitor it as
    ``service_name``, on free loopback ports, and wait until the sentinels know each other
    and the replica is in sync.

    ``down_after_ms`` is how long the master may not answer before a sentinel thinks it down
    (Redis's default, 30 s, would make every failover test wait that long).
    ``failover_timeout_ms`` bounds one failover, and a sentinel that voted in one starts no
    other for twice that long: with Redis's default, 3 minutes, a second failover test would
    wait 6 minutes for the first one's cool-down.
    """
    workdir = make_workdir("redis-sentinel")
    started: list[RedisNode] = []
    try:
        master_port, replica_port, *sentinel_ports = free_ports(5)
        master = _node("master", master_port, [], workdir)
        replica = _node("replica", replica_port, ["--replicaof", HOST, str(master_port)], workdir)
        for node in (master, replica):
            node.start(timeout=timeout)
            started.append(node)
        sentinels = []
        for index, port in enumerate(sentinel_ports):
            directory = workdir / f"sentinel-{index}"
            directory.mkdir()
            # A sentinel rewrites its configuration file as it learns (peers, failovers), so
            # each has a writable one of its own.
            config = directory / "sentinel.conf"
            config.write_text(
                _SENTINEL_CONFIG.format(
                    port=port,
                    host=HOST,
                    dir=directory,
                    service=service_name,
                    master_port=master_port,
                    quorum=2,
                    down_after_ms=down_after_ms,
                    failover_timeout_ms=failover_timeout_ms,
                )
            )
            argv = [find_executable("redis-server"), str(config), "--sentinel"]
            sentinel = RedisNode(ServerProcess(f"sentinel-{index}", argv, workdir=directory), port)
            sentinel.start(timeout=timeout)
            started.append(sentinel)
            sentinels.append(sentinel)
        setup = RedisSentinelSetup(master, replica, sentinels, workdir, service_name)
        try:
            setup.wait_healthy(timeout)
        except TimeoutError as exc:
            tails = "\n".join(node.process.log_tail(10) for node in started)
            raise ServerStartError(f"{exc}\n{tails}") from exc
    except BaseException:
        stop_all(node.process for node in reversed(started))
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return setup
