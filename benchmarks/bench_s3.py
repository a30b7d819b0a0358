"""S3 adapter benchmark, against moto's S3 server over real HTTP on loopback.

1. ``store`` / ``retrieve`` medians through the adapter against raw boto3 ``put_object`` /
   ``get_object`` of the same bytes on the same client (serialized once, beforehand): the
   difference is the adapter's cost (key checks and encoding, serializer, wrapper). The
   adapter is measured with short keys and with 2,000-character task ids, whose objects are
   named by the key's digest and start with a header line holding the key.
2. ``store_many`` of 1000 results (requests overlapped on ``max_pool_connections`` threads)
   against 1000 ``store`` calls one after the other (and ``retrieve_many`` against
   ``retrieve``, ``delete_many`` against ``delete``: 200 of those timed and scaled, since
   each is a HEAD and a DELETE), twice: on moto as it is, then with 10 ms of service
   latency added.

moto's server (``ThreadedMotoServer``) runs in a child process, so its CPU time is not this
process's. It is a Python fake that spends ~3 ms of CPU per request under one GIL, so on bare
moto the overlap is capped by the fake's own throughput (about 2x on two cores). Real S3
answers a PUT in 10-50 ms of latency, not CPU; the second run emulates that with a 10 ms
sleep before each request in the server (concurrent requests sleep concurrently), which is
where overlapping requests pays off. The figures are overhead ratios and overlap, not AWS's.

Run from the repository root: ``.venv/bin/python benchmarks/bench_s3.py``.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Timing, interleaved
from storages.s3 import S3Storage

KEYS = 200
REPEAT = 300
BULK = 1000
BULK_ROUNDS = 1  # each round is 4 x 1000 requests; keeps the script under 2 minutes
LATENCY = 0.010  # seconds added to every request in the second run
RESULT = {"status": "ok", "items": list(range(20)), "name": "task result", "score": 0.5}
LONG_ID = "x" * 2000  # a task id past S3's 1,024-byte object keys
SINGLE_DELETES = 200  # one-by-one deletes timed (two requests each), scaled to BULK

_SERVER = """
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.WARNING)
latency = float(sys.argv[1])
if latency:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    answer = DomainDispatcherApplication.__call__
    def late(self, environ, start_response):
        time.sleep(latency)  # service latency, not CPU: concurrent requests overlap it
        return answer(self, environ, start_response)
    DomainDispatcherApplication.__call__ = late
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # serve until the parent closes this pipe (or dies)
server.stop()
"""


@contextlib.contextmanager
def moto_server(latency: float = 0.0) -> Iterator[tuple[str, int]]:
    """moto's S3 server in a child process on a free loopback port: (endpoint URL, pid);
    ``latency`` seconds are slept before answering each request."""
    with subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        if server.stdout is None or server.stdin is None:
            raise RuntimeError("no pipes to the moto server")
        port = server.stdout.readline().strip()
        if not port:
            raise RuntimeError("moto's server did not start (is moto[server] installed?)")
        try:
            yield f"http://127.0.0.1:{port}", server.pid
        finally:
            server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def storage_for(endpoint: str, **options: Any) -> S3Storage:
    return S3Storage(
        bucket="selinon-like-bench",
        endpoint_url=endpoint,
        aws_access_key_id="AKIABENCHMARK",
        aws_secret_access_key="benchmark-secret",
        region_name="us-east-1",
        create_bucket=True,
        prefix=f"bench-{uuid.uuid4().hex[:8]}",
        **options,
    )


def _row(timing: Timing, baseline: Timing | None) -> str:
    ratio = f"{timing.median / baseline.median:6.2f}x" if baseline else "      -"
    return (
        f"  {timing.name:<30} {timing.median * 1e6:10.1f} {timing.p99 * 1e6:10.1f} "
        f"{timing.ops_per_second:10.0f} {ratio} {timing.errors:6d}"
    )


def overhead(endpoint: str) -> None:
    storage = storage_for(endpoint)
    storage.connect()
    try:
        client, bucket = storage.client, storage.bucket
        data = storage.serializer.dumps(RESULT)
        names = [storage.object_key("raw", "flow", "task", str(i)) for i in range(KEYS)]
        for i in range(KEYS):
            storage.store("flow", "task", str(i), RESULT)
            storage.store("flow", "task", f"{LONG_ID}{i}", RESULT)
            client.put_object(Bucket=bucket, Key=names[i], Body=data)

        def adapter_store(i: int) -> None:
            storage.store("flow", "task", str(i % KEYS), RESULT)

        def raw_store(i: int) -> None:
            client.put_object(Bucket=bucket, Key=names[i % KEYS], Body=data)

        def adapter_retrieve(i: int) -> None:
            storage.retrieve("flow", "task", str(i % KEYS))

        def long_store(i: int) -> None:
            storage.store("flow", "task", f"{LONG_ID}{i % KEYS}", RESULT)

        def long_retrieve(i: int) -> None:
            storage.retrieve("flow", "task", f"{LONG_ID}{i % KEYS}")

        def raw_retrieve(i: int) -> None:
            body = client.get_object(Bucket=bucket, Key=names[i % KEYS])["Body"]
            with contextlib.closing(body):
                body.read()

        timings = interleaved(
            {
                "store (adapter)": adapter_store,
                "store (adapter, long key)": long_store,
                "store (raw boto3)": raw_store,
                "retrieve (adapter)": adapter_retrieve,
                "retrieve (adapter, long key)": long_retrieve,
                "retrieve (raw boto3)": raw_retrieve,
            },
            repeat=REPEAT,
        )
        print(f"\nmoto S3 server over HTTP: {KEYS} keys, {REPEAT} calls each, 5 interleaved rounds")
        print(
            f"  {'operation':<30} {'median_us':>10} {'p99_us':>10} {'ops_s':>10} {'vs raw':>7}"
            f" {'errors':>6}"
        )
        for op in ("store", "retrieve"):
            raw = timings[f"{op} (raw boto3)"]
            print(_row(timings[f"{op} (adapter)"], raw))
            print(_row(timings[f"{op} (adapter, long key)"], raw))
            print(_row(raw, None))
    finally:
        storage.disconnect()


def bulk(endpoint: str, label: str, rounds: int) -> None:
    storage = storage_for(endpoint)
    storage.connect()
    try:
        items = [("bulk", "task", str(i), RESULT) for i in range(BULK)]
        keys = [(f, t, i) for f, t, i, _ in items]
        storage.store_many(items)
        samples: dict[str, list[float]] = {
            name: [] for name in ("many", "single", "rmany", "rsingle", "dmany", "dsingle")
        }

        def timed(name: str, call: Callable[[], object]) -> None:
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)

        def delete_each() -> None:
            for key in keys[:SINGLE_DELETES]:
                storage.delete(*key)

        for _round in range(rounds):
            timed("many", lambda: storage.store_many(items))
            timed("single", lambda: [storage.store(*item) for item in items])
            timed("rmany", lambda: storage.retrieve_many(keys))
            timed("rsingle", lambda: [storage.retrieve(*key) for key in keys])
            timed("dmany", lambda: storage.delete_many(keys))
            storage.store_many(items)  # something to delete again (not measured)
            timed("dsingle", delete_each)
            storage.store_many(items)
        median = {name: statistics.median(values) for name, values in samples.items()}
        workers = storage.max_pool_connections
        runs = "one run" if rounds == 1 else f"median of {rounds} runs"
        print(f"\n{label}: {BULK} results, {runs} ({workers} threads in bulk)")
        print(f"  store_many({BULK})            {median['many'] * 1e3:10.1f} ms")
        print(f"  {BULK} x store                 {median['single'] * 1e3:10.1f} ms")
        print(f"  speed-up                       {median['single'] / median['many']:10.1f}x")
        print(f"  retrieve_many({BULK})         {median['rmany'] * 1e3:10.1f} ms")
        print(f"  {BULK} x retrieve              {median['rsingle'] * 1e3:10.1f} ms")
        print(f"  speed-up                       {median['rsingle'] / median['rmany']:10.1f}x")
        print(f"  delete_many({BULK})           {median['dmany'] * 1e3:10.1f} ms")
        single_delete = median["dsingle"] * BULK / SINGLE_DELETES
        print(f"  {BULK} x delete (from {SINGLE_DELETES})     {single_delete * 1e3:10.1f} ms")
        print(f"  speed-up                       {single_delete / median['dmany']:10.1f}x")
    finally:
        storage.disconnect()


def main() -> None:
    with moto_server() as (endpoint, _pid):
        overhead(endpoint)
        bulk(endpoint, "bare moto", BULK_ROUNDS)
    with moto_server(LATENCY) as (endpoint, _pid):
        bulk(endpoint, f"moto + {LATENCY * 1e3:.0f} ms latency", BULK_ROUNDS)


if __name__ == "__main__":
    main()
