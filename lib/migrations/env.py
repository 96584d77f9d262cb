"""Alembic environment: runs on the connection lib.storage passes in config.attributes."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from lib.celery_config import not_a_result_table
from lib.models import Base

config = context.config


def run_online() -> None:
    """Migrate the caller's connection inside its transaction (see lib.storage.migrate)."""
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line: -x url=... names the database
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("pass the database: alembic -x url=mysql+pymysql://... (or use init-db)")
        with sa.create_engine(url).begin() as conn:
            config.attributes["connection"] = conn
            run_online()
        return
    # Celery's result tables share the MySQL database; autogenerate must not drop them.
    context.configure(connection=connection, target_metadata=Base.metadata, include_name=not_a_result_table)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Print the migrations as SQL for `alembic upgrade --sql` (the URL names the dialect)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
