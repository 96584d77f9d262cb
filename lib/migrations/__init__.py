"""Alembic environment and revisions of the fixed schema; lib.storage.init_db runs them.

Metric columns that `add-metric` adds at run time stay outside Alembic.
"""
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
BASELINE = "0001_baseline"  # the schema of release 7894db5
