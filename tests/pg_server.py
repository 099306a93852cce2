"""Start a throw-away PostgreSQL server for the test session (no mocks of the database).

The server itself is :class:`scripts.postgres_local.PostgresServer` (also what ``make run-postgres``
keeps under ``data/postgres``): binaries from Debian's ``/usr/lib/postgresql/*/bin`` or PATH, else
``apt-get install postgresql`` (root only); a Unix socket in a private temp dir and a free loopback
port, ``fsync=off`` for speed; under root it runs as the ``postgres`` system user.
"""
from __future__ import annotations

from scripts.postgres_local import PostgresServer, PostgresUnavailable

__all__ = ["PostgresServer", "PostgresUnavailable"]
