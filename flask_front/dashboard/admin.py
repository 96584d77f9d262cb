"""Administration pages: devices (register, revoke), metrics, users and a link to Flower."""
from __future__ import annotations

import functools
from typing import Callable
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, render_template, request, url_for

from flask_front.access import caller
from flask_front.dashboard import bp
from flask_front.extensions import login_manager
from lib.config import Config, url_host

SECTIONS = (("devices", "Devices"), ("metrics", "Metrics"), ("users", "Users"))


def admin_page(view: Callable) -> Callable:
    """Decorator: anonymous callers go to the login page, users who are not administrators get 403."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        who = caller()
        if who is None:
            return login_manager.unauthorized()
        if not who.is_admin:
            abort(403, description="this page is for administrators")
        return view(*args, **kwargs)
    return wrapper


def request_hostname() -> str:
    """The host name the browser used for this page, without its port."""
    return urlsplit(f"//{request.host}").hostname or "localhost"


def ingest_url(settings: Config, hostname: str) -> str:
    """The ingest server's URL for a Pi: [ecs] public_ip when set, else the host this page came from."""
    scheme = "wss" if settings.ingest.tls else "ws"
    host = settings.ecs.public_ip or hostname
    return f"{scheme}://{url_host(host)}:{settings.ports.ingest}/ingest"


def flower_url(settings: Config, hostname: str) -> str:
    """Flower on this host at [ports] flower (plain HTTP with basic auth, as start.sh runs it)."""
    return f"http://{url_host(hostname)}:{settings.ports.flower}/"


def render_admin(section: str, **context) -> str:
    """An admin page with the section tabs and the Flower link."""
    settings = current_app.config["SENSORS"]
    return render_template(f"dashboard/admin_{section}.html", section=section, sections=SECTIONS,
                           flower_url=flower_url(settings, request_hostname()), **context)


@bp.route("/admin")
@bp.route("/admin/")
@admin_page
def admin_home():
    """The first admin section."""
    return redirect(url_for("dashboard.admin_devices"))


@bp.route("/admin/devices")
@admin_page
def admin_devices():
    """Devices: register one (its token shown once, with the Pi's command line) and revoke."""
    return render_admin("devices", ingest_url=ingest_url(current_app.config["SENSORS"], request_hostname()))


@bp.route("/admin/metrics")
@admin_page
def admin_metrics():
    """The metric catalogue, and a form to add a metric."""
    return render_admin("metrics")


@bp.route("/admin/users")
@admin_page
def admin_users():
    """Users: add one (a generated password shown once), change roles and passwords, delete."""
    return render_admin("users", me=caller().id)
