"""A private MongoDB-compatible server: SecantusDB (PyPI ``secantusdb``), which speaks the
MongoDB wire protocol on WiredTiger and reports itself as MongoDB 8.2."""

from __future__ import annotations

import shutil
from pathlib import Path

from .process import HOST, ServerProcess, Started, find_executable, free_ports, make_workdir

_CONFIG = """\
[storage]
cache_size = "{cache_size}"
"""


class MongoServer(Started):
    """A running SecantusDB on a free loopback port, its data in a private directory.

    ``url`` is a ``mongodb://`` URL for pymongo. The server advertises itself as the primary of
    a one-node replica set named ``secantus``, so drivers see a replica set.
    """

    def __init__(self, process: ServerProcess, port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.url = f"mongodb://{HOST}:{port}/"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def sweep_ttl(self) -> int:
        """Delete the documents TTL indexes say have expired, now, and return how many.

        Like mongod, SecantusDB sweeps every 60 s (its ``ttl_sweep_seconds`` setting is not
        passed on by ``secantusd-py`` 0.7.0b3); a test of expiry calls this instead of
        waiting a minute. ``secantusAdmin.pruneTtl`` is a SecantusDB command, not MongoDB's.
        """
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=5000
        )
        try:
            reply = client.admin.command("secantusAdmin.pruneTtl")
        finally:
            client.close()
        return int(reply["pruned"])

    def stop(self) -> None:
        """Stop the server by PID and delete its data directory."""
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ping(url: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def start_mongodb(*, timeout: float = 60.0, cache_size: str = "256M") -> MongoServer:
    """Start SecantusDB on a free loopback port and wait until it answers ``ping``.

    ``cache_size`` bounds WiredTiger's cache (SecantusDB's default is 1G). Raises
    ``ServerStartError`` with the log tail when the server does not come up.
    """
    executable = find_executable("secantusd-py")
    workdir = make_workdir("mongodb")
    process: ServerProcess | None = None
    try:
        (port,) = free_ports(1)
        config = workdir / "secantusd.toml"
        config.write_text(_CONFIG.format(cache_size=cache_size))
        # --config also turns off the search of ./, ~/.secantus and /etc/secantus for a file
        # that could change the server under the tests.
        process = ServerProcess(
            "secantusd",
            [
                executable,
                "--config",
                str(config),
                "--host",
                HOST,
                "--port",
                str(port),
                "--storage-path",
                str(workdir / "data"),
                "--log-level",
                "WARNING",
            ],
            workdir=workdir,
        )
        process.start()
        server = MongoServer(process, port, workdir)
        process.wait_ready(lambda: _ping(server.url), timeout=timeout)
    except BaseException:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return server
