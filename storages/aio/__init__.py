"""Async adapters (SPEC section 10), each beside its blocking form in ``storages``."""
