"""Flask extensions, created once here and bound to each app in create_app."""
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from flask_front.api.errors import SensorsApi
from lib.models import Base

# The same metadata as the ingest server and Celery: the models are declared once in lib.
db = SQLAlchemy(metadata=Base.metadata)
# The JSON API under /api/v1 with its OpenAPI document (flask_front.api).
api = SensorsApi()
login_manager = LoginManager()
# Forms check their token themselves (FlaskForm); the API checks it for cookie-authenticated writes.
csrf = CSRFProtect()
# No default limits: only logins are limited (flask_front.auth).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
cors = CORS()
