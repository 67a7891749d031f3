#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(days: &[Weekday], start: &str, end: &str, zone: &str) -> MaintenanceWindow {
    MaintenanceWindow {
        days: days.to_vec(),
        start: start.into(),
        end: end.into(),
        time_zone: zone.into(),
    }
}

fn windows(ws: &[MaintenanceWindow]) -> Windows {
    Windows::parse(ws).unwrap()
}

use Weekday::*;

#[test]
fn no_window_is_always_open() {
    let w = Windows::default();
    let now = ts("2026-11-20T10:00:00Z");
    assert!(w.always_open() && w.is_open(now));
    assert_eq!(w.next_open(now), Some(now));
    assert_eq!(w.closes_at(now), None);
}

#[test]
fn a_weekday_window_in_utc() {
    let w = windows(&[window(&[Mon, Tue, Wed, Thu, Fri], "02:00", "04:00", "UTC")]);
    // Friday 10:00: closed; the next opening is Monday 02:00, not the weekend.
    let fri = ts("2026-11-20T10:00:00Z");
    assert!(!w.is_open(fri));
    assert_eq!(w.next_open(fri), Some(ts("2026-11-23T02:00:00Z")));
    assert_eq!(w.closes_at(fri), None);
    // Start included, end excluded.
    assert!(w.is_open(ts("2026-11-23T02:00:00Z")));
    assert!(w.is_open(ts("2026-11-23T03:59:59Z")));
    assert!(!w.is_open(ts("2026-11-23T04:00:00Z")));
    assert!(!w.is_open(ts("2026-11-23T01:59:59Z")));
    assert_eq!(
        w.closes_at(ts("2026-11-23T03:00:00Z")),
        Some(ts("2026-11-23T04:00:00Z"))
    );
    // Open now: next_open is now.
    let open = ts("2026-11-24T02:30:00Z");
    assert_eq!(w.next_open(open), Some(open));
}

#[test]
fn a_window_past_midnight_belongs_to_the_day_it_opens() {
    let w = windows(&[window(&[Sat], "22:00", "04:00", "UTC")]);
    // Saturday 2026-12-05.
    assert!(!w.is_open(ts("2026-12-05T21:59:00Z")));
    assert!(w.is_open(ts("2026-12-05T22:00:00Z")));
    assert!(w.is_open(ts("2026-12-06T00:00:00Z")));
    assert!(w.is_open(ts("2026-12-06T03:59:00Z")));
    assert!(!w.is_open(ts("2026-12-06T04:00:00Z")));
    // Sunday evening is not an opening day; Saturday early morning is Friday's (none).
    assert!(!w.is_open(ts("2026-12-06T23:00:00Z")));
    assert!(!w.is_open(ts("2026-12-05T01:00:00Z")));
    assert_eq!(
        w.closes_at(ts("2026-12-05T23:00:00Z")),
        Some(ts("2026-12-06T04:00:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-12-06T05:00:00Z")),
        Some(ts("2026-12-12T22:00:00Z"))
    );
}

#[test]
fn an_end_of_midnight_closes_at_midnight() {
    let w = windows(&[window(&[Sat], "22:00", "00:00", "UTC")]);
    assert!(w.is_open(ts("2026-12-05T23:59:59Z")));
    assert!(!w.is_open(ts("2026-12-06T00:00:00Z")));
    assert_eq!(
        w.closes_at(ts("2026-12-05T22:00:00Z")),
        Some(ts("2026-12-06T00:00:00Z"))
    );
}

#[test]
fn several_windows_the_earliest_opens_and_adjacent_ones_join() {
    let w = windows(&[
        window(&[Wed], "10:00", "12:00", "UTC"),
        window(&[Mon], "02:00", "03:00", "UTC"),
        window(&[Mon], "03:00", "05:00", "UTC"),
    ]);
    let sat = ts("2026-11-21T12:00:00Z");
    assert_eq!(w.next_open(sat), Some(ts("2026-11-23T02:00:00Z")));
    // Monday's two windows touch: open from 02:00 to 05:00 without a break.
    assert_eq!(
        w.closes_at(ts("2026-11-23T02:00:00Z")),
        Some(ts("2026-11-23T05:00:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-11-23T05:00:00Z")),
        Some(ts("2026-11-25T10:00:00Z"))
    );
}

#[test]
fn windows_in_different_zones_each_keep_their_own_clock() {
    // 09:00 in Tokyo is 00:00 UTC; 01:00 in Berlin (winter) is 00:00 UTC too.
    let w = windows(&[
        window(&[Tue], "09:00", "10:00", "Asia/Tokyo"),
        window(&[Thu], "01:00", "02:00", "Europe/Berlin"),
    ]);
    let mon = ts("2026-11-23T12:00:00Z");
    assert_eq!(w.next_open(mon), Some(ts("2026-11-24T00:00:00Z")));
    assert_eq!(
        w.next_open(ts("2026-11-24T01:00:00Z")),
        Some(ts("2026-11-26T00:00:00Z"))
    );
}

#[test]
fn berlin_spring_forward_keeps_only_the_local_hours_that_exist() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    let w = windows(&[window(&[Sun], "02:30", "03:30", "Europe/Berlin")]);
    let sat = ts("2026-03-28T12:00:00Z");
    assert!(!w.is_open(ts("2026-03-29T00:59:59Z")), "01:59 CET");
    let opens = w.next_open(sat).unwrap();
    assert_eq!(
        opens,
        ts("2026-03-29T01:00:00Z"),
        "03:00 CEST, the end of the gap"
    );
    assert_eq!(w.closes_at(opens), Some(ts("2026-03-29T01:30:00Z")));
    assert_eq!(
        w.describe(opens),
        "Sun 2026-03-29 03:00 Europe/Berlin (01:00 UTC)"
    );
    // A week later, the whole hour, an hour earlier in UTC than in winter.
    let next = w.next_open(ts("2026-03-29T01:30:00Z")).unwrap();
    assert_eq!(next, ts("2026-04-05T00:30:00Z"));
    assert_eq!(w.closes_at(next), Some(ts("2026-04-05T01:30:00Z")));
}

#[test]
fn berlin_a_window_inside_the_skipped_hour_opens_the_week_after() {
    let w = windows(&[window(&[Sun], "02:00", "02:45", "Europe/Berlin")]);
    assert_eq!(
        w.next_open(ts("2026-03-28T12:00:00Z")),
        Some(ts("2026-04-05T00:00:00Z"))
    );
}

#[test]
fn berlin_fall_back_opens_the_window_in_the_repeated_hour_twice() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:00–03:00 happens twice.
    let w = windows(&[window(&[Sun], "02:15", "02:45", "Europe/Berlin")]);
    let first = w.next_open(ts("2026-10-24T12:00:00Z")).unwrap();
    assert_eq!(first, ts("2026-10-25T00:15:00Z"), "02:15 CEST");
    assert_eq!(w.closes_at(first), Some(ts("2026-10-25T00:45:00Z")));
    let second = w.next_open(ts("2026-10-25T00:45:00Z")).unwrap();
    assert_eq!(second, ts("2026-10-25T01:15:00Z"), "02:15 CET");
    assert_eq!(w.closes_at(second), Some(ts("2026-10-25T01:45:00Z")));
    assert!(!w.is_open(ts("2026-10-25T01:00:00Z")), "02:00 CET");
}

#[test]
fn new_york_spring_forward_shortens_a_window_across_the_gap() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC). 01:30–03:30 local is one real hour.
    let w = windows(&[window(&[Sun], "01:30", "03:30", "America/New_York")]);
    let opens = w.next_open(ts("2026-03-07T12:00:00Z")).unwrap();
    assert_eq!(opens, ts("2026-03-08T06:30:00Z"), "01:30 EST");
    assert!(w.is_open(ts("2026-03-08T07:00:00Z")), "03:00 EDT");
    assert_eq!(
        w.closes_at(opens),
        Some(ts("2026-03-08T07:30:00Z")),
        "03:30 EDT"
    );
}

#[test]
fn new_york_fall_back_reopens_a_window_past_midnight_in_the_repeated_hour() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC). A Saturday window until 01:30
    // is open until 01:30 EDT, closed for the rest of that hour, and open again from 01:00 EST
    // (the clock is back inside it) until 01:30 EST.
    let w = windows(&[window(&[Sat], "23:00", "01:30", "America/New_York")]);
    let opens = w.next_open(ts("2026-10-31T12:00:00Z")).unwrap();
    assert_eq!(opens, ts("2026-11-01T03:00:00Z"), "23:00 EDT");
    assert_eq!(w.closes_at(opens), Some(ts("2026-11-01T05:30:00Z")));
    let again = w.next_open(ts("2026-11-01T05:30:00Z")).unwrap();
    assert_eq!(
        again,
        ts("2026-11-01T06:00:00Z"),
        "01:00 EST, the transition itself"
    );
    assert_eq!(w.closes_at(again), Some(ts("2026-11-01T06:30:00Z")));
    assert_eq!(
        w.next_open(ts("2026-11-01T06:30:00Z")),
        Some(ts("2026-11-08T04:00:00Z")),
        "23:00 EST a week later"
    );
}

#[test]
fn openings_are_described_in_the_zone_and_in_utc() {
    let w = windows(&[window(&[Sat], "02:00", "04:00", "Europe/Berlin")]);
    let at = w.next_open(ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(at, ts("2026-12-05T01:00:00Z"));
    assert_eq!(
        w.describe(at),
        "Sat 2026-12-05 02:00 Europe/Berlin (01:00 UTC)"
    );
    let w = windows(&[window(&[Sat], "00:30", "04:00", "Europe/Berlin")]);
    let at = w.next_open(ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(
        w.describe(at),
        "Sat 2026-12-05 00:30 Europe/Berlin (Fri 2026-12-04 23:30 UTC)"
    );
    let w = windows(&[window(&[Sat], "02:00", "04:00", "UTC")]);
    let at = w.next_open(ts("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(w.describe(at), "Sat 2026-12-05 02:00 UTC");
}

#[track_caller]
fn rejected(ws: &[MaintenanceWindow], wanted: &[&str]) {
    let e = Windows::parse(ws).unwrap_err().to_string();
    for w in wanted {
        assert!(e.contains(w), "{e:?} lacks {w:?}");
    }
}

#[test]
fn an_unknown_time_zone_is_named_in_the_error() {
    rejected(
        &[
            window(&[Mon], "02:00", "04:00", "UTC"),
            window(&[Mon], "02:00", "04:00", "Mars/Olympus_Mons"),
        ],
        &[
            "spec.maintenanceWindows[1].timeZone",
            "\"Mars/Olympus_Mons\"",
        ],
    );
}

#[test]
fn malformed_windows_are_rejected_with_the_field() {
    for bad in ["24:00", "2:00", "02:60", "0200", "02:00:00", "", "ab:cd"] {
        rejected(
            &[window(&[Mon], bad, "04:00", "UTC")],
            &["maintenanceWindows[0].start", &format!("{bad:?}")],
        );
        rejected(
            &[window(&[Mon], "04:00", bad, "UTC")],
            &["maintenanceWindows[0].end"],
        );
    }
    rejected(
        &[window(&[Mon], "04:00", "04:00", "UTC")],
        &["maintenanceWindows[0].end", "other than start"],
    );
    rejected(
        &[window(&[], "02:00", "04:00", "UTC")],
        &["days", "at least one"],
    );
    rejected(
        &[window(&[Mon, Tue, Mon], "02:00", "04:00", "UTC")],
        &["days", "at most once"],
    );
}

#[test]
fn zones_come_from_the_bundled_database() {
    // The database compiled into molt answers even where the host has none.
    assert!(TimeZoneDatabase::bundled().get("America/New_York").is_ok());
    assert!(TZDB.get("Europe/Berlin").is_ok());
    assert!(!TZDB.is_definitively_empty());
}
