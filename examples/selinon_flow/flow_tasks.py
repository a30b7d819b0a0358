"""The tasks of the example flow ``arithmetic``: Sum -> Scale -> Report -> Refuse.

Each task gets the flow's ``node_args`` (``{"numbers": [...], "factor": n}``) and reads its
parent's result with ``parent_task_result``, which Selinon fetches from the storage. Each result
carries the pid of the process that computed it, so a run in a prefork worker shows which
child did the work.
"""

from __future__ import annotations

import os
from typing import Any

from selinon import SelinonTask


class Sum(SelinonTask):
    """The sum of ``numbers``."""

    def run(self, node_args: dict[str, Any]) -> dict[str, Any]:
        return {"sum": sum(node_args["numbers"]), "pid": os.getpid()}


class Scale(SelinonTask):
    """Sum's result times ``factor``; stored under ``Scaled`` (``storage_task_name``)."""

    def run(self, node_args: dict[str, Any]) -> dict[str, Any]:
        total = self.parent_task_result("Sum")["sum"]
        return {"scaled": total * node_args["factor"], "pid": os.getpid()}


class Report(SelinonTask):
    """A sentence about Scale's result. Selinon asks the storage for task ``Scale``; the
    drop-in adapter finds it under ``Scaled``."""

    def run(self, node_args: dict[str, Any]) -> dict[str, Any]:
        scaled = self.parent_task_result("Scale")["scaled"]
        sentence = f"the sum of {node_args['numbers']} times {node_args['factor']} is {scaled}"
        return {"report": sentence, "pid": os.getpid()}


class Refuse(SelinonTask):
    """Fails on purpose: Selinon then calls the storage's ``store_error``."""

    def run(self, node_args: dict[str, Any]) -> None:
        raise ValueError(f"refused on purpose after {node_args['numbers']}")
