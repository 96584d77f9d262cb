"""The original routes: /realTime (the newest reading as JSON) and the index page, on SQLite and MariaDB."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from lib import storage
from tests.test_api_devices import BUILTIN, HUGE_ID, iso_ms
from tests.test_auth import post_login
from tests.web_fixtures import make_app


def write(engine, device_id: int, ts_ms: int, co2=None, temperature=None, humidity=None) -> None:
    assert storage.write_readings(engine, BUILTIN, [(device_id, ts_ms, co2, temperature, humidity)]) == {}


def add(engine, name: str) -> int:
    return storage.add_device(engine, name)[0].id


# ---- /realTime ---------------------------------------------------------------------------

@pytest.mark.parametrize("with_device", [False, True], ids=["no-device", "device-without-readings"])
def test_real_time_is_404_before_any_reading(web_client, engine, with_device):
    """Nothing stored yet: 404 saying so (a page, not JSON: this is not under /api)."""
    if with_device:
        add(engine, "quiet")
    response = web_client.get("/realTime")
    assert response.status_code == 404
    assert "no reading stored yet" in response.get_data(as_text=True)


def test_real_time_gives_the_newest_reading_of_the_first_device_with_readings(web_client, engine):
    """The lowest device id that has readings; its newest reading with the three metrics and time."""
    add(engine, "a-quiet")  # first, but without readings
    first = add(engine, "z-first")
    second = add(engine, "b-second")
    ts = storage.now_ms() - 5000
    write(engine, first, ts - 1000, 400.0, 19.0, 35.0)
    write(engine, first, ts, 612.5, 21.25, None)
    write(engine, second, ts + 1000, 900.0, 25.0, 50.0)
    response = web_client.get("/realTime")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert body == {"device_id": first, "device": "z-first", "co2": 612.5, "temperature": 21.25,
                    "humidity": None, "time": body["time"], "time_ms": ts}
    assert iso_ms(body["time"]) == ts


def test_real_time_of_one_device(web_client, engine):
    """?device=<id> picks that device."""
    first = add(engine, "first")
    second = add(engine, "second")
    ts = storage.now_ms()
    write(engine, first, ts, 500.0, 20.0, 30.0)
    write(engine, second, ts - 10, 700.0, 22.0, 33.0)
    body = web_client.get(f"/realTime?device={second}").get_json()
    assert (body["device_id"], body["co2"], body["time_ms"]) == (second, 700.0, ts - 10)


def test_real_time_skips_revoked_devices_unless_asked_for(web_client, engine):
    """A revoked device is not 'the first device'; asked for by id it still answers."""
    gone = add(engine, "gone")
    kept = add(engine, "kept")
    ts = storage.now_ms()
    write(engine, gone, ts, 500.0)
    write(engine, kept, ts, 800.0)
    storage.revoke_device(engine, "gone")
    assert web_client.get("/realTime").get_json()["device_id"] == kept
    assert web_client.get(f"/realTime?device={gone}").get_json()["device_id"] == gone


@pytest.mark.parametrize("device", ["987654", str(HUGE_ID), "abc", "-1", ""])
def test_real_time_of_an_unknown_device_is_404(web_client, engine, device):
    """An id without a device, huge or not a number: 404, never a 500 nor another device."""
    write(engine, add(engine, "pi"), storage.now_ms(), 500.0)
    assert web_client.get(f"/realTime?device={device}").status_code == 404


def test_real_time_is_not_cached_stale(web_client, engine):
    """A newer reading shows on the next request (read from the database each time)."""
    pi = add(engine, "pi")
    ts = storage.now_ms() - 1000
    write(engine, pi, ts, 500.0)
    assert web_client.get("/realTime").get_json()["co2"] == 500.0
    write(engine, pi, ts + 500, 501.0)
    assert web_client.get("/realTime").get_json()["co2"] == 501.0


# ---- / -----------------------------------------------------------------------------------

def test_index_is_the_dashboard_overview(web_client):
    """`/` is the overview page; its tiles are drawn in the browser (tests/test_dashboard_pages.py)."""
    response = web_client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'src="/static/js/overview.js"' in page and 'href="/api/v1/docs"' in page


# ---- [web] public = off ------------------------------------------------------------------------

@pytest.fixture
def private_client(web_settings):
    """A client of an app with [web] public = off."""
    return make_app(web_settings.with_overrides({"web": {"public": "off"}})).test_client()


@pytest.mark.parametrize("url", ["/", "/realTime", "/realTime?device=1"])
def test_public_off_sends_pages_to_the_login_form(private_client, url):
    """Anonymous: a redirect to the login page, coming back here afterwards."""
    response = private_client.get(url)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [url]


@pytest.mark.parametrize("url,status", [("/", 200), ("/realTime", 200)])
def test_public_off_lets_users_in(private_client, engine, user, url, status):
    """With a user's API token or logged-in session the pages answer."""
    write(engine, add(engine, "pi"), storage.now_ms(), 500.0)
    assert private_client.get(url, headers=user.headers).status_code == status
    assert post_login(private_client, user.name, user.password).status_code == 302
    assert private_client.get(url).status_code == status
