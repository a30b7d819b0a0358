"""A Celery app whose tasks keep their results and errors in selinon_like storages.

Run a worker (the machine's Redis is the broker) from this directory::

    SELINON_LIKE_CONFIG=storages.yml celery -A worker_app worker --pool=prefork --concurrency=2

and send it work from anywhere::

    from worker_app import square
    square.delay("my_flow", n=7)

A task written with :func:`stored_task` returns its result to the storage, not to a Celery
result backend: ``StoragePool.store(flow_name, task_name, celery_task_id, result)``, routed by
the ``tasks:`` section of ``SELINON_LIKE_CONFIG``. When it raises, the error is recorded first
with ``StoragePool.store_error(node_args, flow_name, task_name, task_id, sys.exc_info())`` and
Celery then marks the task failed as usual.

The pool is checked (every storage connected and pinged) in the worker's main process before
it forks its children; each child then builds its own connections (selinon_like is fork-safe).

Environment: ``SELINON_LIKE_CONFIG`` (the storages file), ``SELINON_LIKE_CELERY_BROKER``
(default ``redis://127.0.0.1:6379/5``), ``SELINON_LIKE_CELERY_QUEUE`` (default
``selinon-like``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import celeryd_after_setup, worker_process_shutdown

from selinon_like import StoragePool

log = logging.getLogger(__name__)

BROKER_URL = os.environ.get("SELINON_LIKE_CELERY_BROKER", "redis://127.0.0.1:6379/5")
QUEUE = os.environ.get("SELINON_LIKE_CELERY_QUEUE", "selinon-like")

app = Celery("selinon_like_example", broker=BROKER_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,  # results live in the storages, not in a Celery backend
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)


def stored_task(fn: Callable[..., Any]) -> Task:
    """A Celery task ``(flow_name, **node_args)`` running ``fn(**node_args)``, whose result or
    error is stored under ``(flow_name, fn.__name__, celery task id)``."""
    task_name = fn.__name__

    def run(self: Task, flow_name: str, **node_args: Any) -> None:
        task_id = self.request.id
        try:
            result = fn(**node_args)
        except Exception:
            StoragePool.store_error(node_args, flow_name, task_name, task_id, sys.exc_info())
            raise
        StoragePool.store(flow_name, task_name, task_id, result)

    run.__doc__ = fn.__doc__
    run.__name__ = task_name
    return app.task(name=f"selinon_like_example.{task_name}", bind=True)(run)


@stored_task
def square(n: int) -> dict[str, int]:
    """The square of ``n`` (and the pid of the worker process that computed it); a multiple
    of 5 fails on purpose."""
    if n % 5 == 0:
        raise ValueError(f"{n} is a multiple of 5: refused on purpose")
    return {"n": n, "square": n * n, "pid": os.getpid()}


@celeryd_after_setup.connect
def _check_storages(**_kwargs: Any) -> None:
    """Fail fast: connect and ping every storage in the main process, before the fork."""
    for row in StoragePool.check():
        if row.ok:
            log.info("storage %s (%s) ok", row.name, row.adapter)
        else:
            log.error("storage %s (%s) FAILED: %s", row.name, row.adapter, row.error)


@worker_process_shutdown.connect
def _disconnect(**_kwargs: Any) -> None:
    StoragePool.disconnect_all()
