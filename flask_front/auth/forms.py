"""The login and logout forms (Flask-WTF: each carries a CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length


class LoginForm(FlaskForm):
    """User name and password."""

    name = StringField("User name", validators=[InputRequired(), Length(max=64)],
                       render_kw={"autocomplete": "username", "autofocus": True})
    # Longer than bcrypt reads, so a long password is not refused here but checked as typed.
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    remember = BooleanField("Stay logged in on this computer")
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    """Nothing but the CSRF token: logging out is a POST another site cannot forge."""

    submit = SubmitField("Log out")
