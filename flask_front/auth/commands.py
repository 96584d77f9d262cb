"""Commands for web users and their API tokens: `flask --app flask_front create-user NAME`..."""
from __future__ import annotations

import sys

import click

from flask_front.auth import bp
from flask_front.extensions import db
from lib.storage import users
from lib.validation import ms_to_iso

STDIN_HELP = ("read the password from the first line of standard input (for scripts, "
              "as `docker login --password-stdin`) instead of asking for it twice")


def _check_password(value: str) -> str:
    """click value_proc: ask again at once when the password is too short or too long."""
    try:
        users.check_new_password(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice without echo."""
    if not from_stdin:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True,
                            value_proc=_check_password)
    line = sys.stdin.readline()  # click's test runner swaps sys.stdin too
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise click.ClickException("no password on standard input")
    return password


def _fail(exc: ValueError) -> click.ClickException:
    """The storage layer's message as the command's error."""
    return click.ClickException(str(exc))


@bp.cli.command("create-user")
@click.argument("name")
@click.option("--admin", is_flag=True, help="may register and revoke devices, metrics, alert rules")
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
def create_user(name: str, admin: bool, password_stdin: bool) -> None:
    """Add a web user: asks for the password twice (hidden), or reads it with --password-stdin."""
    try:  # the name is checked before asking for a password
        name = users.check_user_name(name)
    except ValueError as exc:
        raise _fail(exc) from None
    if any(u.name.casefold() == name.casefold() for u in users.list_users(db.engine)):
        raise click.ClickException(f"user {name!r} already exists")
    try:
        info = users.create_user(db.engine, name, read_password(password_stdin), admin=admin)
    except ValueError as exc:
        raise _fail(exc) from None
    click.echo(f"{'administrator' if info.is_admin else 'user'} {info.name!r} created with id {info.id}")


@bp.cli.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
def set_password(name: str, password_stdin: bool) -> None:
    """Change a user's password (sessions already open stay open until they log out)."""
    if not any(u.name == name for u in users.list_users(db.engine)):
        raise click.ClickException(f"no user named {name!r} (see list-users)")
    try:
        users.set_password(db.engine, name, read_password(password_stdin))
    except ValueError as exc:
        raise _fail(exc) from None
    click.echo(f"password of {name!r} changed")


@bp.cli.command("list-users")
def list_users() -> None:
    """List the web users: id, name, role, created."""
    for info in users.list_users(db.engine):
        role = "admin" if info.is_admin else "user"
        click.echo(f"{info.id}\t{info.name}\t{role}\tcreated {ms_to_iso(info.created_ms)}")


@bp.cli.command("create-api-token")
@click.argument("user")
@click.option("--label", default="", help="what the token is for, e.g. 'backup script' (64 characters)")
def create_api_token(user: str, label: str) -> None:
    """Make an API token for USER; it is printed once, alone on the last line."""
    try:
        token_id, token = users.create_api_token(db.engine, user, label)
    except ValueError as exc:
        raise _fail(exc) from None
    click.echo(f"API token {token_id} created for user {user!r}; send it as "
               "'Authorization: Bearer <token>'. It acts with the user's rights and is shown only "
               f"now (revoke it with revoke-api-token {token_id}); it follows:")
    click.echo(token)


@bp.cli.command("list-api-tokens")
@click.argument("user", required=False)
def list_api_tokens(user: str | None) -> None:
    """List API tokens (of USER, or everyone's): id, user, label, created, last used."""
    try:
        tokens = users.list_api_tokens(db.engine, user)
    except ValueError as exc:
        raise _fail(exc) from None
    for t in tokens:
        used = ms_to_iso(t.last_used_ms) if t.last_used_ms is not None else "never"
        click.echo(f"{t.id}\t{t.user_name}\t{t.label or '-'}\t"
                   f"created {ms_to_iso(t.created_ms)}\tlast used {used}")


@bp.cli.command("revoke-api-token")
@click.argument("token_id", type=int)
def revoke_api_token(token_id: int) -> None:
    """Delete an API token by its id (see list-api-tokens); it stops working at once."""
    if not users.revoke_api_token(db.engine, token_id):
        raise click.ClickException(f"no API token with id {token_id} (see list-api-tokens)")
    click.echo(f"API token {token_id} revoked")
