"""Hypothesis strategies for hostile input: text with characters PostgreSQL cannot store, integers
at the edges of the database's columns, arbitrary JSON, times at the edges of the calendar."""

from __future__ import annotations

from datetime import timedelta, timezone

from hypothesis import strategies as st

# Characters PostgreSQL cannot store, mixed into generated text (hypothesis rarely draws them).
UNSTORABLE = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])


def hostile_text(max_size: int):
    # About one character in ten is unstorable, so most short strings stay clean.
    return st.text(alphabet=st.one_of(*[st.characters()] * 9, UNSTORABLE), max_size=max_size)


# The edges of the integer and bigint columns the request fields are compared with.
EDGE_INTEGERS = st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30, -(2**63) - 1])
# floats() includes NaN and the infinities; json.dumps writes them as NaN/Infinity tokens.
JSON_SCALARS = st.none() | st.booleans() | st.integers() | EDGE_INTEGERS | st.floats() | hostile_text(20)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text(10), children, max_size=4),
    max_leaves=12,
)
_OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=5), timedelta(hours=-5), timedelta(hours=14, minutes=59)])
ISO_TIMES = (
    st.datetimes().map(lambda d: d.isoformat())
    | st.builds(lambda d, o: d.replace(tzinfo=timezone(o)).isoformat(), st.datetimes(), _OFFSETS)
    | st.sampled_from(
        ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
    )
)
