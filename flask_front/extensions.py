"""Flask extensions, created once and bound to each app in create_app."""
from flask_sqlalchemy import SQLAlchemy

from lib.models import Base

# The same metadata as the ingest server and Celery: the models are declared once in lib.
db = SQLAlchemy(metadata=Base.metadata)
