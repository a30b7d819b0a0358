"""examples/async_app.py, as a user runs it: on the embedded default configuration (no server)
and on Redis, with every warning an error (an unclosed connection or a never-awaited coroutine
fails the run)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from conftest import REDIS_URL, require_service

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "async_app.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_async_example_runs_on_the_embedded_default() -> None:
    done = _run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "45 pages stored, 135 links, 5 failures recorded" in done.stdout
    assert "first failure: https://example.org/9 timed out" in done.stdout
    assert done.stderr == ""


def test_the_async_example_runs_on_redis(tmp_path: Path) -> None:
    def probe() -> Any:
        import redis

        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()

    require_service("Redis", probe)
    prefix = f"example-{uuid.uuid4().hex}:"
    config = tmp_path / "storages.yml"
    config.write_text(
        "storages:\n"
        "  - name: Results\n"
        "    classname: redis\n"
        f"    configuration: {{url: '{REDIS_URL}', key_prefix: '{prefix}'}}\n"
    )
    try:
        done = _run(str(config))
    finally:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "45 pages stored, 135 links, 5 failures recorded" in done.stdout
    assert "Results: {" in done.stdout
    assert len(keys) == 51  # 45 results, the summary, 5 error records: all under the prefix
