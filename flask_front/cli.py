"""Administrator commands: `flask --app flask_front <command>`."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from lib import storage
from lib.catalogue import Metric
from lib.validation import ms_to_iso
from flask_front.extensions import db


def register(app: Flask) -> None:
    """Attach the commands to `app`."""
    for command in (init_db, add_device, list_devices, add_metric, list_metrics):
        app.cli.add_command(command)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the schema and the built-in metrics (safe to run again)."""
    storage.init_db(db.engine)
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")


@click.command("add-device")
@with_appcontext
@click.argument("name")
def add_device(name: str) -> None:
    """Register a device; its token is printed once, alone on the last line."""
    try:
        device, token = storage.add_device(db.engine, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"device {device.name!r} registered with id {device.id}; its token "
               "(keep it secret, it is not shown again) follows:")
    click.echo(token)


@click.command("list-devices")
@with_appcontext
def list_devices() -> None:
    """List the registered devices."""
    for device in storage.list_devices(db.engine):
        click.echo(f"{device.id}\t{device.name}\tregistered {ms_to_iso(device.created_ms)}")


@click.command("add-metric")
@with_appcontext
@click.argument("name")
@click.option("--unit", required=True, help="unit shown with values, e.g. hPa")
@click.option("--min", "min_value", type=float, required=True, help="lowest valid value")
@click.option("--max", "max_value", type=float, required=True, help="highest valid value")
@click.option("--label", default="", help="human name, e.g. 'Air pressure'")
def add_metric(name: str, unit: str, min_value: float, max_value: float, label: str) -> None:
    """Add a metric devices may report (for example pressure or pm2_5)."""
    try:
        storage.add_metric(db.engine, Metric(name, unit, min_value, max_value, label))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"metric {name} added; running ingest servers pick it up within a minute")


@click.command("list-metrics")
@with_appcontext
def list_metrics() -> None:
    """List the metric catalogue."""
    for metric in storage.load_catalogue(db.engine):
        click.echo(f"{metric.name}\t{metric.unit}\t{metric.min_value:g}..{metric.max_value:g}\t{metric.title}")
