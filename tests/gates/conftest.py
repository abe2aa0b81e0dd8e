"""Fixtures for the gate, artifact, store and Odoo tests: a workspace on disk and real peers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.contract import Artifacts
from orchestrator.store_seed import create_store_tables
from tests.peers.odoo import OdooServer

MANIFEST = """# -*- coding: utf-8 -*-
{
    'name': 'Sales Extras',
    'version': '17.0.1.2.0',
    'depends': ['base', 'sale'],
    'data': ['views/sale.xml'],
    'installable': True,
    'sequence': -1,
}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A repository as the Action sees it: two migrations in a folder and one Odoo module."""
    root = tmp_path / "ws"
    (root / "db" / "migrations").mkdir(parents=True)
    (root / "db" / "migrations" / "V1__init.sql").write_text("CREATE TABLE orders (id int);\n")
    (root / "db" / "migrations" / "U1__init.sql").write_text("DROP TABLE orders;\n")
    module = root / "addons" / "sale_extras"
    (module / "views").mkdir(parents=True)
    (module / "__manifest__.py").write_text(MANIFEST)
    (module / "__init__.py").write_text("from . import models\n")
    (module / "views" / "sale.xml").write_text("<odoo/>\n")
    return root


@pytest.fixture
def artifacts() -> Artifacts:
    return Artifacts(
        odoo_modules=(Path("addons/sale_extras"),),
        migrations=(Path("db/migrations"),),
        docker_image="ghcr.io/acme/shop@sha256:" + "ab" * 32,
    )


@pytest.fixture
def store_dsn(pg_dsn: str) -> str:
    """A fresh database holding the pipeline store tables (schema/pipeline-store.sql)."""
    create_store_tables(pg_dsn)
    return pg_dsn


@pytest.fixture
def odoo_server() -> Iterator[OdooServer]:
    server = OdooServer()
    yield server
    server.close()
