"""Debtor-local time: offsets per distinct zone (per-instant lookups and the transition table
agree with zoneinfo), local ↔ UTC, DST."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernel.errors import PostloanError
from kernel.hookspecs import US_PER_DAY, US_PER_MINUTE, utc_offsets
from plugin_helpers import make_actions, us, utc

ZONES = ["Asia/Shanghai", "Asia/Urumqi", "America/New_York", "America/Los_Angeles", "America/Chicago",
         "America/Phoenix", "Europe/London", "Australia/Lord_Howe"]
START, END = us(utc(2000, 1, 1)), us(utc(2040, 1, 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(ZONES))), st.integers(START, END)), min_size=1, max_size=40))
def test_per_instant_and_transition_table_offsets_agree_with_zoneinfo(pairs):
    zone_of = np.array([z for z, _ in pairs])
    instants = np.array([t for _, t in pairs], np.int64)
    by_zoneinfo = utc_offsets(ZONES, zone_of, instants, per_instant=True)
    by_table = utc_offsets(ZONES, zone_of, instants)
    np.testing.assert_array_equal(by_zoneinfo, by_table)
    expected = [dt.datetime.fromtimestamp(t / 1e6, zoneinfo.ZoneInfo(ZONES[z])).utcoffset() // dt.timedelta(microseconds=1)
                for z, t in pairs]
    assert by_zoneinfo.tolist() == expected


def test_transition_table_is_exact_to_the_microsecond_around_dst_changes():
    # New York 2026-03-08 07:00 UTC and 2039-03-13 07:00 UTC (a rule-based year past 2037),
    # London 2026-10-25 01:00 UTC, Lord Howe's 30-minute shift 2026-04-04 15:00 UTC
    changes = [(2, us(utc(2026, 3, 8, 7))), (2, us(utc(2039, 3, 13, 7))), (6, us(utc(2026, 10, 25, 1))),
               (7, us(utc(2026, 4, 4, 15)))]
    zone_of = np.array([z for z, t in changes for _ in range(3)])
    instants = np.array([t + d for _, t in changes for d in (-1, 0, 1)], np.int64)
    expected = [dt.datetime.fromtimestamp(0, dt.timezone.utc).__add__(dt.timedelta(microseconds=int(t)))
                .astimezone(zoneinfo.ZoneInfo(ZONES[z])).utcoffset() // dt.timedelta(microseconds=1)
                for z, t in zip(zone_of, instants)]
    assert utc_offsets(ZONES, zone_of, instants).tolist() == expected
    assert expected[0] != expected[1] and expected[1] == expected[2]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ZONES[:6]), st.integers(us(utc(2020, 1, 1)), us(utc(2035, 1, 1))),
       st.integers(0, 1439))
def test_next_local_time_is_the_first_matching_wall_clock_time(zone, now_us, minute):
    now = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=now_us)
    actions = make_actions([{"time_zone": zone}], [(0, "PHONE")], now)
    got = int(actions.next_local_time(minute)[0])
    local = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=got)).astimezone(zoneinfo.ZoneInfo(zone))
    assert got >= now_us
    if (local.hour * 60 + local.minute) != minute:
        # only a wall-clock time skipped by a spring-forward gap may be moved (by the gap)
        wall = local.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0, tzinfo=None)
        assert wall.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(dt.timezone.utc).astimezone(
            zoneinfo.ZoneInfo(zone)).replace(tzinfo=None) != wall
    assert got - now_us <= US_PER_DAY + 60 * US_PER_MINUTE


def test_local_minute_and_day_follow_dst():
    summer = make_actions([{"time_zone": "America/New_York"}], [(0, "SMS")], utc(2026, 7, 1, 0, 59))
    winter = make_actions([{"time_zone": "America/New_York"}], [(0, "SMS")], utc(2026, 12, 1, 0, 59))
    assert summer.local_minute.tolist() == [20 * 60 + 59]
    assert winter.local_minute.tolist() == [19 * 60 + 59]
    assert summer.local_day.tolist() == [(dt.date(2026, 6, 30) - dt.date(1970, 1, 1)).days]


def test_a_spring_forward_gap_moves_a_wall_time_forward():
    actions = make_actions([{"time_zone": "America/New_York"}], [(0, "SMS")], utc(2026, 3, 8, 5, 0))
    local = (dt.date(2026, 3, 8) - dt.date(1970, 1, 1)).days * US_PER_DAY + 150 * US_PER_MINUTE   # 02:30 does not exist
    assert actions.local_to_utc(np.array([local])).tolist() == [us(utc(2026, 3, 8, 7, 30))]        # 03:30 EDT


def test_an_unknown_time_zone_is_reported_by_name():
    actions = make_actions([{"time_zone": "Mars/Olympus_Mons"}], [(0, "SMS")], utc(2026, 7, 1))
    with pytest.raises(PostloanError, match="unknown IANA time zone 'Mars/Olympus_Mons'"):
        actions.local_minute


def test_now_must_be_aware():
    with pytest.raises(PostloanError, match="time-zone-aware"):
        make_actions([{}], [(0, "SMS")], dt.datetime(2026, 7, 1, 10, 0))
