"""Run the example flow once in this process (Celery's eager mode: no broker, no worker) and
print what it stored.

    python run_eager.py 1 2 3 --factor 10          # a table
    python run_eager.py 1 2 3 --factor 10 --json   # one JSON document (the tests read it)
"""

from __future__ import annotations

import argparse
import json
import time

from celery import Celery
from selinon import run_flow
from selinon_setup import FLOW, configure, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="+", type=int)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    started = time.perf_counter()
    app = Celery("selinon_flow_eager", broker="memory://", backend="cache+memory://")
    # Eager: every task, the dispatcher included, runs inside run_flow(); the in-memory
    # result backend keeps the task states the dispatcher checks.
    app.conf.update(task_always_eager=True, task_store_eager_result=True)
    configure(app)
    run_flow(FLOW, {"numbers": args.numbers, "factor": args.factor})
    found = stored()
    seconds = time.perf_counter() - started

    if args.json:
        print(json.dumps({**found, "seconds": seconds}))
        return
    for item in found["results"]:
        _flow, task, task_id = item["key"]
        print(f"{task:8} {task_id}  {json.dumps(item['result'])}")
    for item in found["errors"]:
        _flow, task, task_id = item["key"]
        record = item["record"]
        print(f"{task:8} {task_id}  failed: {record['exception_type']}: {record['message']}")
    print(f"({seconds:.2f} s)")


if __name__ == "__main__":
    main()
