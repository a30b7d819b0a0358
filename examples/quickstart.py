"""Quickstart: the embedded default configuration, no server needed (``make demo``).

Configures the process-wide pool from ``config/storages.yml`` and runs the steps of
:mod:`selinon_like.quickstart` — read that module for the code: four threads store and read back
100 results, a task failure is recorded with ``store_error``, and every storage is checked.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from selinon_like import StoragePool
from selinon_like.quickstart import run

CONFIG = Path(__file__).resolve().parent.parent / "config" / "storages.yml"


def main() -> int:
    # The default config keeps its files under $SELINON_LIKE_DATA (./var by default).
    data = tempfile.mkdtemp(prefix="selinon-like-demo-")
    os.environ.setdefault("SELINON_LIKE_DATA", data)
    try:
        with StoragePool.configure(CONFIG) as pool:
            return 0 if run(pool, CONFIG.name) else 1
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
