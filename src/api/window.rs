//! Maintenance windows: the weekly times at which a plan may start a batch.
//!
//! The schema checks what it can (day names, `HH:MM`, start ≠ end, the shape of a zone name);
//! whether the bundled time zone database knows a zone is checked by the engine, which reports an
//! unknown one as an invalid spec.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: a time of day, `HH:MM` on a 24-hour clock.
const TIME_OF_DAY_RULE: &str = "self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')";

/// A weekly period during which batches may start.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.start != self.end")
    .message("a maintenance window's start and end must differ (an end before the start runs past midnight)"))]
pub struct MaintenanceWindow {
    /// The days on which the window opens (at `start`, local time); a window that runs past
    /// midnight belongs to the day it opens.
    #[schemars(length(min = 1, max = 7))]
    #[x_kube(validation = kube::core::Rule::new("size(self) >= 1")
        .message("a maintenance window must name at least one day"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(d, self.exists_one(e, e == d))")
        .message("a maintenance window must not name a day twice"))]
    pub days: Vec<Weekday>,

    /// Opening time, `HH:MM` on a 24-hour clock, in `timeZone`.
    #[schemars(length(min = 5, max = 5))]
    #[x_kube(validation = kube::core::Rule::new(TIME_OF_DAY_RULE)
        .message("start must be a time of day HH:MM on a 24-hour clock, such as 02:00 or 22:30"))]
    pub start: String,

    /// Closing time, `HH:MM` on a 24-hour clock, in `timeZone`. Before `start`, the window runs
    /// past midnight into the next day (`22:00`–`04:00`); `00:00` closes it at midnight.
    #[schemars(length(min = 5, max = 5))]
    #[x_kube(validation = kube::core::Rule::new(TIME_OF_DAY_RULE)
        .message("end must be a time of day HH:MM on a 24-hour clock, such as 06:00 or 00:00"))]
    pub end: String,

    /// IANA time zone of `days`, `start` and `end` (`Europe/Berlin`, `America/New_York`), from the
    /// time zone database built into molt. Daylight saving changes are followed.
    #[serde(default = "utc")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = kube::core::Rule::new(r"self.matches('^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$')")
        .message("timeZone must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York"))]
    pub time_zone: String,
}

/// A day of the week.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

fn utc() -> String {
    "UTC".to_string()
}
