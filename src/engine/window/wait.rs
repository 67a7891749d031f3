//! The engine's one use of windows: a batch starts only while one is open.
//!
//! Called where a batch would start (the plan's start, the next batch), never on the way back:
//! a batch in flight finishes whatever the clock says, and a rollback is never held.

use crate::api::condition::{reasons, types};
use crate::engine::action::EventType;
use crate::engine::settings::Settings;
use crate::engine::{RESYNC, Step, status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

impl Step<'_> {
    /// If no window is open now, wait for the next: say when it opens (status and words), look
    /// again at that moment, and return `true`; `before` prefixes the words.
    pub(crate) fn outside_window(&mut self, settings: &Settings, before: &str) -> bool {
        let windows = &settings.windows;
        if windows.is_open(self.now) {
            return false;
        }
        let message = match windows.next_open(self.now) {
            Some(at) => {
                self.status.next_window_at = Some(Time(at));
                self.requeue_at(at);
                format!(
                    "{before}waiting for the maintenance window: opens {}",
                    windows.describe(at)
                )
            }
            None => {
                self.requeue_within(RESYNC);
                format!(
                    "{before}waiting for the maintenance window: none opens within {} days",
                    super::HORIZON_DAYS
                )
            }
        };
        let was_waiting = status::condition(&self.status, types::PROGRESSING)
            .is_some_and(|c| c.reason == reasons::OUTSIDE_MAINTENANCE_WINDOW);
        if !was_waiting {
            self.event(
                EventType::Normal,
                reasons::OUTSIDE_MAINTENANCE_WINDOW,
                message.clone(),
            );
        }
        self.say(reasons::OUTSIDE_MAINTENANCE_WINDOW, message);
        true
    }
}

/// "1 node left; ", "3 nodes left; ": what the next batch would take from, before the wait.
pub(crate) fn nodes_left(n: usize) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} node{s} left; ")
}
