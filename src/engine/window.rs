//! Maintenance windows, resolved: is one open at an instant, when does the next open, when does
//! the open one close.
//!
//! A window is wall-clock time in its zone: an instant is inside when its local day and time are.
//! So across a daylight-saving change a window keeps its local hours: on the spring-forward day
//! the part of a window inside the skipped hour does not exist (02:30–03:30 in Berlin is open
//! from 03:00 to 03:30), and on the fall-back day a window inside the repeated hour is open both
//! times that hour occurs. The time zone data is the IANA database built into the binary, so the
//! answer never depends on the host's `/usr/share/zoneinfo`.
//!
//! Pure: `now` is always an argument.

mod wait;
pub(crate) use wait::nodes_left;
#[cfg(test)]
mod tests;

use crate::api::{MaintenanceWindow, Weekday};
use crate::engine::settings::SpecError;
use jiff::civil::Time;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{Span, Timestamp};
use std::sync::LazyLock;

/// The bundled time zone database, the only one molt consults.
static TZDB: LazyLock<TimeZoneDatabase> = LazyLock::new(TimeZoneDatabase::bundled);

/// How far ahead an opening (or closing) is looked for. Every window opens each week; a
/// window swallowed by one daylight-saving gap opens again the week after.
pub const HORIZON_DAYS: i64 = 15;

/// One window, resolved.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Days it opens on, Monday first.
    days: [bool; 7],
    start: Time,
    end: Time,
    tz: TimeZone,
    zone: String,
}

/// The plan's windows; none means always open.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Windows(Vec<Window>);

fn invalid(index: usize, field: &'static str, value: String, expected: &'static str) -> SpecError {
    SpecError::Window {
        index,
        field,
        value,
        expected,
    }
}

/// `HH:MM` on a 24-hour clock.
fn time_of_day(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    let two = |p: &str| -> Option<i8> {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m) = (two(h)?, two(m)?);
    Time::new(h, m, 0, 0).ok()
}

fn day_index(d: Weekday) -> usize {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

impl Window {
    fn parse(index: usize, w: &MaintenanceWindow) -> Result<Window, SpecError> {
        let mut days = [false; 7];
        for d in &w.days {
            let i = day_index(*d);
            if days[i] {
                return Err(invalid(
                    index,
                    "days",
                    format!("{:?}", w.days),
                    "each day at most once",
                ));
            }
            days[i] = true;
        }
        if w.days.is_empty() {
            return Err(invalid(index, "days", "[]".into(), "at least one day"));
        }
        const HHMM: &str = "a time of day HH:MM on a 24-hour clock";
        let start =
            time_of_day(&w.start).ok_or_else(|| invalid(index, "start", w.start.clone(), HHMM))?;
        let end = time_of_day(&w.end).ok_or_else(|| invalid(index, "end", w.end.clone(), HHMM))?;
        if start == end {
            return Err(invalid(
                index,
                "end",
                w.end.clone(),
                "a time other than start (an end before start runs past midnight)",
            ));
        }
        let tz = TZDB.get(&w.time_zone).map_err(|_| {
            invalid(
                index,
                "timeZone",
                w.time_zone.clone(),
                "a time zone of the IANA database built into molt, such as UTC, Europe/Berlin or America/New_York",
            )
        })?;
        Ok(Window {
            days,
            start,
            end,
            tz,
            zone: w.time_zone.clone(),
        })
    }

    /// Whether the local day and time of `t` are inside the window.
    fn contains(&self, t: Timestamp) -> bool {
        let local = self.tz.to_datetime(t);
        let day = local.date().weekday().to_monday_zero_offset() as usize;
        let time = local.time();
        if self.start < self.end {
            self.days[day] && self.start <= time && time < self.end
        } else {
            // Past midnight: the evening of an opening day, or the morning after one.
            (self.days[day] && time >= self.start) || (self.days[(day + 6) % 7] && time < self.end)
        }
    }

    /// Every instant at which `contains` may change within the horizon after `now`: the local
    /// boundaries (start, end, midnight) of each day, resolved both ways where the hour repeats,
    /// and the zone's own transitions (where the clock jumps over a boundary).
    fn edges(&self, now: Timestamp, until: Timestamp, out: &mut Vec<Timestamp>) {
        let today = self.tz.to_datetime(now).date();
        for offset in -1..=HORIZON_DAYS {
            let Ok(date) = today.checked_add(Span::new().days(offset)) else {
                continue;
            };
            for time in [self.start, self.end, Time::midnight()] {
                let at = self.tz.to_ambiguous_timestamp(date.to_datetime(time));
                out.extend(at.earlier().ok());
                out.extend(at.later().ok());
            }
        }
        out.extend(
            self.tz
                .following(now)
                .map(|t| t.timestamp())
                .take_while(|t| *t <= until),
        );
    }
}

impl Windows {
    /// Resolve and check the spec's windows; the first bad one is the error.
    pub fn parse(spec: &[MaintenanceWindow]) -> Result<Windows, SpecError> {
        spec.iter()
            .enumerate()
            .map(|(i, w)| Window::parse(i, w))
            .collect::<Result<Vec<_>, _>>()
            .map(Windows)
    }

    /// No window is configured: batches may start at any time.
    pub fn always_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a batch may start at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.always_open() || self.0.iter().any(|w| w.contains(now))
    }

    /// The candidate instants after `now` at which openness may change, in order.
    fn edges_after(&self, now: Timestamp) -> Vec<Timestamp> {
        let until = now
            .checked_add(Span::new().hours(24 * (HORIZON_DAYS + 1)))
            .unwrap_or(Timestamp::MAX);
        let mut out = vec![];
        for w in &self.0 {
            w.edges(now, until, &mut out);
        }
        out.retain(|t| *t > now && *t <= until);
        out.sort();
        out.dedup();
        out
    }

    /// The first instant at or after `now` at which a window is open (`now` itself while one
    /// is); `None` if none opens within [`HORIZON_DAYS`].
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        if self.is_open(now) {
            return Some(now);
        }
        self.edges_after(now).into_iter().find(|t| self.is_open(*t))
    }

    /// While a window is open, the instant the last open one closes; `None` when closed at `now`,
    /// always open, or open for all of the horizon.
    pub fn closes_at(&self, now: Timestamp) -> Option<Timestamp> {
        if self.always_open() || !self.is_open(now) {
            return None;
        }
        self.edges_after(now)
            .into_iter()
            .find(|t| !self.is_open(*t))
    }

    /// `at` in words, in the zone of a window open at `at`: "Sat 2026-12-05 02:00 Europe/Berlin
    /// (01:00 UTC)".
    pub fn describe(&self, at: Timestamp) -> String {
        let utc = at.strftime("%H:%M UTC").to_string();
        let Some(w) = self
            .0
            .iter()
            .find(|w| w.contains(at))
            .or_else(|| self.0.first())
        else {
            return at.strftime("%a %Y-%m-%d %H:%M UTC").to_string();
        };
        let local = at.to_zoned(w.tz.clone());
        let shown = local.strftime("%a %Y-%m-%d %H:%M").to_string();
        if local.offset().seconds() == 0 && matches!(w.zone.as_str(), "UTC" | "Etc/UTC") {
            return format!("{shown} UTC");
        }
        let utc_day = TimeZone::UTC.to_datetime(at).date();
        if utc_day == local.date() {
            format!("{shown} {} ({utc})", w.zone)
        } else {
            let utc = at.strftime("%a %Y-%m-%d %H:%M UTC");
            format!("{shown} {} ({utc})", w.zone)
        }
    }
}
