"""Private servers the test suite (and the benchmarks) start for themselves: a
MongoDB-compatible server, an S3 server, a Redis Cluster and a Redis Sentinel setup, each on
free loopback ports with its data in a temporary directory, stopped by PID.

Free of pytest: from the repository root, ``from tests.servers import start_s3`` works in any
script (``tests`` is a namespace package); inside the test suite, where ``tests/`` is on
``sys.path``, the package is ``servers``.
"""

from .mongodb import MongoServer, start_mongodb
from .process import ServerProcess, ServerStartError, free_ports, port_is_free, wait_until
from .redis_nodes import (
    FailoverReport,
    RedisClusterSetup,
    RedisNode,
    RedisSentinelSetup,
    start_redis_cluster,
    start_redis_sentinel,
)
from .s3 import S3Server, start_s3

__all__ = [
    "FailoverReport",
    "MongoServer",
    "RedisClusterSetup",
    "RedisNode",
    "RedisSentinelSetup",
    "S3Server",
    "ServerProcess",
    "ServerStartError",
    "free_ports",
    "port_is_free",
    "start_mongodb",
    "start_redis_cluster",
    "start_redis_sentinel",
    "start_s3",
    "wait_until",
]
