"""The login and logout pages, the login rate limit, and where unauthorized page requests go."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from flask_front.access import LoginUser
from flask_front.api.errors import API_PREFIX
from flask_front.auth import bp
from flask_front.auth.forms import LoginForm, LogoutForm
from flask_front.extensions import api, db, limiter, login_manager
from lib.storage import users

log = logging.getLogger(__name__)

HOME = "/"
WRONG_LOGIN = "wrong user name or password"


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else the home page: no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return HOME
    # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil" or "/\t/evil" mean "//evil".
    if any(c == "\\" or c.isspace() or ord(c) < 32 or ord(c) == 127 for c in target):
        return HOME
    parts = urlsplit(target)
    return HOME if parts.scheme or parts.netloc else target


def here() -> str:
    """This request's path and query, to come back to after logging in."""
    query = request.query_string.decode("latin-1")
    return request.script_root + request.path + (f"?{query}" if query else "")


def login_limit() -> str:
    """[web] login_limit, e.g. "10 per minute" (read per request: each app has its settings)."""
    return current_app.config["SENSORS"].web.login_limit


def client_key() -> str:
    """Rate-limit key of the client's address."""
    return f"ip:{get_remote_address()}"


def user_key() -> str:
    """Rate-limit key of the submitted user name, so one account cannot be tried from many addresses."""
    # Folded, so varying the case (which MariaDB ignores when looking a name up) gains no attempts.
    return "user:" + request.form.get("name", "").strip()[:64].casefold()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, key_func=client_key, methods=["POST"])
@limiter.limit(login_limit, key_func=user_key, methods=["POST"])
def login():
    """The login form; on success back to `next` (a path on this site) or the home page."""
    form = LoginForm()
    target = safe_next(request.args.get("next"))
    if request.method == "GET":
        return render_template("auth/login.html", form=form)
    if not form.validate():  # a missing field or a missing, expired or forged CSRF token
        return render_template("auth/login.html", form=form), 400
    name = form.name.data.strip()
    info = users.check_login(db.engine, name, form.password.data)
    if info is None:
        # 401 so failed logins stand out in the access log (e.g. for fail2ban).
        log.warning("failed login for user name %r from %s", name, get_remote_address())
        return render_template("auth/login.html", form=form, error=WRONG_LOGIN), 401
    login_user(LoginUser(info), remember=bool(form.remember.data))
    log.info("user %r logged in from %s", info.name, get_remote_address())
    return redirect(target)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET asks to confirm; POST (with its CSRF token) logs out and goes to the home page."""
    form = LogoutForm()
    if request.method == "GET":
        return render_template("auth/logout.html", form=form)
    if not form.validate():
        return render_template("auth/logout.html", form=form), 400
    if current_user.is_authenticated:
        log.info("user %r logged out", current_user.info.name)
    logout_user()
    return redirect(HOME)


@bp.errorhandler(429)
def too_many_logins(error):
    """A page saying why (API paths get JSON from flask_front.api.errors)."""
    return render_template("auth/too_many.html", limit=login_limit()), 429


@login_manager.unauthorized_handler
def unauthorized():
    """@login_required: pages go to the login form, the API answers JSON 401."""
    if request.path.startswith(API_PREFIX):
        abort(401, description="log in or send an API token")
    return redirect(url_for("auth.login", next=here()))


@bp.app_errorhandler(401)
def unauthorized_page(error):
    """abort(401) on a page (e.g. [web] public = off) leads to the login form; the API keeps JSON."""
    if request.path.startswith(API_PREFIX):
        return api.handle_http_exception(error)
    return redirect(url_for("auth.login", next=here()))
