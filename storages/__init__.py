"""The built-in storage adapters, one module per service.

Importing this package (or any adapter module) imports no driver: each adapter imports its
driver when it first connects, so a missing driver fails there with the pip extra to install.

| module | class | extra |
| --- | --- | --- |
| ``storages.memory`` | ``InMemoryStorage`` | none |
| ``storages.filesystem`` | ``Filesystem`` | none |
| ``storages.sql`` | ``SqlStorage`` (any SQLAlchemy 2 URL), ``SQLite`` | ``sql`` |
| ``storages.postgresql`` | ``PostgreSQL`` | ``postgresql`` |
| ``storages.mysql`` | ``MySQL`` | ``mysql`` |
| ``storages.redis`` | ``Redis`` | ``redis`` |
| ``storages.mongodb`` | ``MongoDB`` | ``mongodb`` |
| ``storages.s3`` | ``S3Storage`` | ``s3`` |
"""
