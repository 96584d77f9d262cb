"""Administrator commands: `flask --app flask_front <command>`."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from lib import storage
from lib.alerts import rule_spec
from lib.catalogue import Metric
from lib.storage import alerts as alert_store
from lib.validation import ms_to_iso
from flask_front.extensions import db


def register(app: Flask) -> None:
    """Attach the commands to `app`."""
    for command in (init_db, add_device, list_devices, revoke_device, add_metric, list_metrics,
                    add_alert, list_alerts, delete_alert, list_alert_events, run_task):
        app.cli.add_command(command)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the schema and seed the built-in metrics (safe to run again)."""
    from lib.storage.schema import current_revision  # Alembic: only this command needs it

    storage.init_db(db.engine)
    click.echo(f"database ready at schema {current_revision(db.engine)}: "
               f"{db.engine.url.render_as_string(hide_password=True)}")


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
        revoked = f"\trevoked {ms_to_iso(device.revoked_ms)}" if device.revoked_ms is not None else ""
        click.echo(f"{device.id}\t{device.name}\tregistered {ms_to_iso(device.created_ms)}{revoked}")


@click.command("revoke-device")
@with_appcontext
@click.argument("name")
@click.option("--delete-readings", is_flag=True,
              help="also delete the device with all its readings, rollups and alerts")
def revoke_device(name: str, delete_readings: bool) -> None:
    """Revoke a device: its token stops working now and its connections close within seconds."""
    try:
        device = storage.revoke_device(db.engine, name, delete_readings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    kept = "deleted with all its data" if delete_readings else "its readings are kept"
    click.echo(f"device {device.name!r} (id {device.id}) revoked; {kept}; open connections "
               "close within [ingest] revoke_check_seconds")


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
    click.echo(f"metric {name} added; running ingest servers accept it at once (they re-read "
               "the catalogue when a reading names a metric they do not know)")


@click.command("list-metrics")
@with_appcontext
def list_metrics() -> None:
    """List the metric catalogue."""
    for metric in storage.load_catalogue(db.engine):
        click.echo(f"{metric.name}\t{metric.unit}\t{metric.min_value:g}..{metric.max_value:g}\t{metric.title}")


# ---- alerts -----------------------------------------------------------------------

@click.command("add-alert")
@with_appcontext
@click.option("--name", required=True, help="name shown in notifications")
@click.option("--device", "device_name", default=None, help="device name (default: every device)")
@click.option("--metric", default=None, help="metric to watch, e.g. co2")
@click.option("--above", type=float, default=None, help="fire while the metric is above X")
@click.option("--below", type=float, default=None, help="fire while the metric is below X")
@click.option("--no-data-minutes", type=click.IntRange(min=1), default=None,
              help="fire when a device sends nothing for N minutes")
@click.option("--for", "hold", default="0", show_default=True,
              help="how long the condition must hold: seconds, or 90s, 5m, 1h")
@click.option("--hysteresis", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="resolve only once the metric is this far back past the threshold")
def add_alert(name, device_name, metric, above, below, no_data_minutes, hold, hysteresis) -> None:
    """Add an alert rule: --metric with --above or --below, or --no-data-minutes."""
    try:
        fields = rule_spec(name=name, metric=metric, above=above, below=below,
                           no_data_minutes=no_data_minutes, hold=hold, hysteresis=hysteresis)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        rule_id = alert_store.add_rule(db.engine, device_id=_device_id(device_name), **fields)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    rule = next(r.rule for r in alert_store.list_rules(db.engine) if r.rule.id == rule_id)
    click.echo(f"alert rule {rule_id} added: {rule.name}: {rule.describe()} "
               f"on {device_name or 'every device'}")


def _device_id(name: str | None) -> int | None:
    """The id of the device called `name` (None for every device)."""
    if name is None:
        return None
    for device in storage.list_devices(db.engine):
        if device.name == name:
            return device.id
    raise click.ClickException(f"no device named {name!r} (see list-devices)")


@click.command("list-alerts")
@with_appcontext
def list_alerts() -> None:
    """List the alert rules."""
    for info in alert_store.list_rules(db.engine):
        rule = info.rule
        fields = [str(rule.id), rule.name, info.device_name or "(every device)", rule.describe()]
        click.echo("\t".join(fields + ([] if info.enabled else ["disabled"])))


@click.command("delete-alert")
@with_appcontext
@click.argument("rule_id", type=int)
def delete_alert(rule_id: int) -> None:
    """Delete an alert rule with its events."""
    if not alert_store.delete_rule(db.engine, rule_id):
        raise click.ClickException(f"no alert rule with id {rule_id} (see list-alerts)")
    click.echo(f"alert rule {rule_id} deleted")


@click.command("list-alert-events")
@with_appcontext
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def list_alert_events(limit: int) -> None:
    """List the most recent alert events, newest first."""
    for event in alert_store.list_events(db.engine, limit):
        value = "" if event.value is None else f"{event.value:g}"
        resolved = ms_to_iso(event.resolved_ms) if event.resolved_ms is not None else "-"
        sent = ",".join(n for n in ("firing", "resolved") if event.sent_ms(n) is not None) or "none"
        click.echo(f"{event.id}\t{event.state}\t{event.rule_name}\t{event.device_name}\t{value}\t"
                   f"fired {ms_to_iso(event.fired_ms)}\tresolved {resolved}\tsent {sent}")


# ---- background tasks ---------------------------------------------------------------

@click.command("run-task")
@with_appcontext
@click.argument("name")
@click.option("--arg", "json_args", multiple=True, metavar="JSON",
              help="a positional argument as JSON, e.g. --arg '[1, 2]' (repeat for more)")
@click.option("--wait", is_flag=True, help="wait for the task and print its result")
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="seconds --wait waits")
def run_task(name: str, json_args: tuple[str, ...], wait: bool, timeout: float) -> None:
    """Queue Celery task NAME (e.g. celery_tasks.draw_charts) and print its id; --wait prints the result."""
    import json

    from flask import current_app

    from lib import tasks

    if name not in tasks.TASK_NAMES:
        raise click.UsageError(f"unknown task {name!r}; known tasks: {', '.join(tasks.TASK_NAMES)}")
    try:
        args = [json.loads(text) for text in json_args]
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--arg must be JSON: {exc}") from None
    client = current_app.extensions["sensors_celery"]
    try:
        task_id = tasks.send(client, name, args)
    except tasks.BrokerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(task_id)
    if not wait:
        return
    try:
        status = tasks.wait(client, task_id, timeout)
    except tasks.ResultsUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if status["state"] == "SUCCESS":
        click.echo(json.dumps(status["result"], sort_keys=True))
    elif status["ready"]:
        raise click.ClickException(f"task {task_id} failed: {status.get('error')}")
    else:
        raise click.ClickException(f"task {task_id} is still {status['state']} after {timeout:g} s")
