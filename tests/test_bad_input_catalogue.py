"""The bad-input catalogue itself: at least 60 classes, every rendering a real row, every row in a class,
and every surface either rendered or marked not applicable with a reason (no class skipped silently)."""
from __future__ import annotations

import pytest

from tests.badinput_cases import CASES, HANDSHAKES
from tests.badinput_catalogue import CLASSES, NA
from tests.badinput_http import API, INGEST, WIRE
from tests.test_api_ingest import PARITY

# The tables each surface's rows may come from (frames on http: those HTTP ingest can carry).
TABLES = {
    "ws": {"frame": {c.id for c in CASES}, "handshake": {h.id for h in HANDSHAKES}},
    "http": {"frame": {c.id for c in PARITY}, "ingest": {r.id for r in INGEST}, "wire": {w.id for w in WIRE}},
    "api": {"api": {r.id for r in API}, "wire": {w.id for w in WIRE}},
}
ROWS = {"frame": [c.id for c in CASES], "handshake": [h.id for h in HANDSHAKES], "ingest": [r.id for r in INGEST],
        "api": [r.id for r in API], "wire": [w.id for w in WIRE]}


def test_the_catalogue_has_at_least_60_classes_of_bad_input():
    """The issue asks for 60; controls (valid input at the edge of a rule) do not count."""
    ids = [c.id for c in CLASSES]
    assert len(ids) == len(set(ids))
    assert {c.kind for c in CLASSES} <= {"bad", "control"}
    assert len([c for c in CLASSES if c.kind == "bad"]) >= 60


@pytest.mark.parametrize("surface", ["ws", "http", "api"])
def test_each_surface_is_rendered_or_marked_not_applicable(surface):
    """A rendering lists real rows of that surface's tables; NA says why in a sentence."""
    for cls in CLASSES:
        rendering = getattr(cls, surface)
        if isinstance(rendering, NA):
            assert len(rendering.why) >= 15, (cls.id, surface)
            continue
        assert isinstance(rendering, tuple) and rendering, (cls.id, surface)
        for ref in rendering:
            table, _, row = ref.partition(":")
            assert row in TABLES[surface].get(table, ()), f"{cls.id}: {ref} is no {surface} row"


def test_each_class_is_rendered_somewhere():
    """No class is all NA."""
    assert [c.id for c in CLASSES if all(isinstance(getattr(c, s), NA) for s in ("ws", "http", "api"))] == []


@pytest.mark.parametrize("table", sorted(ROWS))
def test_every_row_belongs_to_a_class(table):
    """A row outside the catalogue would be a class nobody named."""
    named = {ref.partition(":")[2] for c in CLASSES for s in ("ws", "http", "api")
             if not isinstance(getattr(c, s), NA) for ref in getattr(c, s) if ref.startswith(table + ":")}
    ids = ROWS[table]
    assert len(ids) == len(set(ids)), f"{table}: a row id is used twice"
    assert [i for i in ids if i not in named] == []


def test_every_refusal_gives_a_reason():
    """Each HTTP row answering 4xx expects a reason in the answer, not just the status."""
    assert [r.id for r in INGEST + API if r.status >= 400 and not r.says] == []
    assert [w.id for w in WIRE if w.status >= 400 and not w.says] == []
    assert [h.id for h in HANDSHAKES if h.status is not None and h.status >= 400 and not h.body] == []
