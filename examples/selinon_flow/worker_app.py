"""The example flow in a real Celery worker: prefork pool, Redis as broker and result backend.

Run a worker from this directory (the machine's Redis)::

    celery -A worker_app worker --pool=prefork --concurrency=2 --loglevel=INFO

and start a flow from another shell (same directory)::

    python worker_app.py 1 2 3 --factor 10

Selinon's dispatcher is a Celery task that polls the states of the flow's tasks, so the app
needs a result backend; task states expire after 10 minutes (results live in the storages).

Before the pool forks, the main process connects every storage and pings it (a real round
trip: for Redis an open socket). The drop-in adapters report ``is_connected()`` false in each
child, so Selinon connects them again there and no child uses the parent's connection.

Environment: ``SELINON_LIKE_CELERY_BROKER`` (default ``redis://127.0.0.1:6379/5``),
``SELINON_FLOW_NODES`` / ``SELINON_FLOW_FLOWS`` (see ``selinon_setup``).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_shutdown
from selinon import Config, StoragePool, run_flow
from selinon_setup import FLOW, configure

log = logging.getLogger(__name__)

BROKER_URL = os.environ.get("SELINON_LIKE_CELERY_BROKER", "redis://127.0.0.1:6379/5")

app = Celery("selinon_flow", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)
configure(app)


@celeryd_after_setup.connect
def _connect_before_fork(**_kwargs: Any) -> None:
    """Connect and ping every storage in the main process, before the pool forks."""
    for name in Config.storage_mapping:
        storage = StoragePool.get_connected_storage(name)
        storage.storage.ping()
        log.info("storage %s (%r) connected in the main process %d", name, storage, os.getpid())


@worker_process_shutdown.connect
def _disconnect(**_kwargs: Any) -> None:
    for storage in Config.storage_mapping.values():
        storage.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the example flow on the worker.")
    parser.add_argument("numbers", nargs="+", type=int)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()
    dispatcher = run_flow(FLOW, {"numbers": args.numbers, "factor": args.factor})
    print(f"flow {FLOW} started: dispatcher {dispatcher.id}")


if __name__ == "__main__":
    main()
