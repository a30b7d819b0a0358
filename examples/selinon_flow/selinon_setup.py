"""What the example's two entry points share: Selinon configured on a Celery app.

``SELINON_FLOW_NODES`` and ``SELINON_FLOW_FLOWS`` name the Selinon files (default: the
``nodes.yml`` and ``flows.yml`` beside this file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from selinon import Config

HERE = Path(__file__).resolve().parent
FLOW = "arithmetic"


def nodes_file() -> str:
    return os.environ.get("SELINON_FLOW_NODES", str(HERE / "nodes.yml"))


def flows_file() -> str:
    return os.environ.get("SELINON_FLOW_FLOWS", str(HERE / "flows.yml"))


def configure(app: Celery) -> None:
    """Register Selinon's tasks on ``app`` and load the flow. Selinon builds every storage of
    ``nodes.yml`` here, once: the drop-in adapters do no I/O until first used."""
    Config.set_celery_app(app)
    Config.set_config_yaml(nodes_file(), [flows_file()])


def stored(flow_name: str = FLOW) -> dict[str, list[dict[str, Any]]]:
    """Every result and error record of ``flow_name``, read through the storages Selinon built
    (``selinon.StoragePool``), each as ``{"storage", "key", "result" | "record"}``."""
    from selinon import StoragePool

    found: dict[str, list[dict[str, Any]]] = {"results": [], "errors": []}
    for name in Config.storage_mapping:
        adapter = StoragePool.get_connected_storage(name).storage  # selinon_like's adapter
        for key in sorted(adapter.iter_keys(flow_name)):
            found["results"].append(
                {"storage": name, "key": list(key), "result": adapter.retrieve(*key)}
            )
        for key in sorted(adapter.iter_error_keys(flow_name)):
            found["errors"].append(
                {"storage": name, "key": list(key), "record": adapter.retrieve_error(*key)}
            )
    return found
