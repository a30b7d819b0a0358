"""An asyncio program storing and reading task results through the async pool.

    python examples/async_app.py                       # the embedded default, no server
    python examples/async_app.py path/to/storages.yml  # your configuration (Redis, PostgreSQL…)

It plays a small crawler: 50 ``fetch`` tasks run at once on one event loop, each storing its
result with ``await pool.store(...)``; every tenth one fails and records the failure with
``await pool.store_error(...)``; a ``parse`` task then reads the results back, all at once,
with ``asyncio.gather``. The YAML is the blocking pool's: ``tasks`` routes ``fetch`` and
``parse`` to their storages, and each storage runs natively async (Redis, PostgreSQL, MongoDB,
S3, memory) or in a bounded thread pool (files, SQLite, your own blocking adapter).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from selinon_like import ResultNotFound
from selinon_like.aio import AsyncStoragePool

CONFIG = Path(__file__).resolve().parent.parent / "config" / "storages.yml"
FLOW = "crawl"
PAGES = 50


async def fetch(pool: AsyncStoragePool, page: int) -> None:
    """One task: "download" a page and store what it found, or the error it met."""
    task_id = f"page-{page}"
    node_args = {"url": f"https://example.org/{page}"}
    try:
        await asyncio.sleep(0.001)  # the network
        if page % 10 == 9:
            raise TimeoutError(f"{node_args['url']} timed out")
        await pool.store(FLOW, "fetch", task_id, {"url": node_args["url"], "links": page % 7})
    except TimeoutError as exc:
        await pool.store_error(node_args, FLOW, "fetch", task_id, exc)


async def parse(pool: AsyncStoragePool) -> tuple[int, int, list[str]]:
    """Read every page's result back at once: pages found, links counted, failures' messages."""

    async def one(page: int) -> dict[str, object] | None:
        try:
            result: dict[str, object] = await pool.retrieve(FLOW, "fetch", f"page-{page}")
            return result
        except ResultNotFound:
            return None

    results = await asyncio.gather(*(one(page) for page in range(PAGES)))
    found = [result for result in results if result is not None]
    failed = [page for page, result in enumerate(results) if result is None]
    errors = [
        (await pool.retrieve_error(FLOW, "fetch", f"page-{page}"))["message"] for page in failed
    ]
    links = sum(int(str(result["links"])) for result in found)
    await pool.store(FLOW, "parse", "summary", {"pages": len(found), "links": links})
    return len(found), links, errors


async def main(config: Path) -> int:
    async with AsyncStoragePool.from_yaml(config) as pool:
        await asyncio.gather(*(fetch(pool, page) for page in range(PAGES)))
        pages, links, errors = await parse(pool)
        summary = await pool.retrieve(FLOW, "parse", "summary")
        print(f"{pages} pages stored, {links} links, {len(errors)} failures recorded")
        print(f"first failure: {errors[0]}")
        print(f"summary read back: {summary}")
        for name, stats in pool.stats().items():
            counts = {op: row["count"] for op, row in stats["operations"].items()}
            print(f"{name}: {counts}")
        return 0 if pages == PAGES - PAGES // 10 and summary["pages"] == pages else 1


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CONFIG
    # The default configuration keeps its files under $SELINON_LIKE_DATA (./var by default).
    data = tempfile.mkdtemp(prefix="selinon-like-async-")
    os.environ.setdefault("SELINON_LIKE_DATA", data)
    try:
        sys.exit(asyncio.run(main(path)))
    finally:
        shutil.rmtree(data, ignore_errors=True)
