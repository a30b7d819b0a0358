"""Suite-wide hooks (tests/ and examples/): how tests share out under pytest-xdist, and a
one-line summary of skips.

``make test`` runs the suite on several pytest-xdist workers (``--dist loadgroup``), then the
tests marked ``timing`` in a pass of their own:

* Session and module fixtures run once per worker: each worker starts the private servers its
  tests ask for (MongoDB-compatible, S3, moto: a few seconds each), on ports and in
  directories of its own. Only the private Redis Cluster and Sentinel setups (eleven processes,
  and failover tests that stop and restart them) are kept to one worker, by an xdist group.
* Shared services (PostgreSQL, MariaDB, Redis on their usual ports) need no grouping: every
  test works under names of its own (random table names, key prefixes, queues, databases), so
  workers never meet.
* ``timing`` marks tests that assert wall-clock bounds (a call on a stopped server ends within
  its deadline plus 10 %) and must not run beside the CPU-heavy rest of the suite: see
  ``_TIMING``. They run after it, two at a time and beside nothing else: they mostly wait on
  sockets and sleeps, each on private servers of its own.
"""

from __future__ import annotations

from collections import Counter

import pytest

# fixture name -> the xdist group of every test that uses it: one setup per run, not per worker.
_SERVER_GROUPS = {
    "redis_cluster": "redis-private",
    "redis_cluster_nodes": "redis-private",
    "redis_sentinel": "redis-private",
    "redis_sentinels": "redis-private",
}
_MODULE_GROUPS = {"test_redis_topologies.py": "redis-private"}

# Tests that must not run beside the rest, by node id prefix, and why. The second pass of
# `make test` runs them (`pytest -m timing`); the first leaves them out.
_TIMING: dict[str, str] = {
    "tests/faults/": "fault injection: stops and restarts servers, asserts calls end in time",
}


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.nodeid.startswith(prefix) for prefix in _TIMING):
            item.add_marker(pytest.mark.timing)
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = next(
            (
                _SERVER_GROUPS[name]
                for name in getattr(item, "fixturenames", ())
                if name in _SERVER_GROUPS
            ),
            None,
        )
        if group is None:
            group = _MODULE_GROUPS.get(item.path.name)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for all skips (``-rs`` still lists each): how many, why most often."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: Counter[str] = Counter()
    for report in skipped:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else "?"
        reasons[str(reason).removeprefix("Skipped: ")] += 1
    top, count = reasons.most_common(1)[0]
    if len(top) > 90:
        top = top[:89] + "…"
    kinds = f"{len(reasons)} reasons" if len(reasons) > 1 else "1 reason"
    terminalreporter.write_line(
        f"skipped: {len(skipped)} tests for {kinds}, most often ({count}) {top!r}; "
        "pytest -rs lists them"
    )
