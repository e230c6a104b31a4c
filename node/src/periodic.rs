//! Periodic tasks' cron expressions, with a time zone ([`crate::db::schedules`]).
//!
//! Five fields (minute hour day-of-month month day-of-week) or six (seconds first), as the
//! `cron` crate reads them (`Mon-Fri`, `*/15`, `1,15`), evaluated in an IANA time zone, so
//! `0 30 9 * * Mon-Fri` in `Europe/Madrid` runs at half past nine there in winter and summer.
//!
//! Ticks are instants (UTC): every instant whose wall-clock time in the zone matches. Where
//! the clocks go back, an hour's wall-clock times happen twice: a schedule that repeats
//! within the day (its hour field is not one fixed hour: `*`, `*/2`, `9-17`, `8,20`) ticks at
//! both, a schedule of fixed hours once (at the first). Where the clocks go forward, the
//! skipped wall-clock times do not happen: a repeating schedule skips them, a fixed one runs
//! an hour later on the wall clock (a daily 02:30 runs at 03:30 that day).

use crate::db::schedules::{ScheduleRow, Ticks};
use chrono::{DateTime, Utc};
use std::str::FromStr;

/// A parsed expression and its zone.
#[derive(Debug, Clone)]
pub struct Cron {
    schedule: cron::Schedule,
    tz: chrono_tz::Tz,
    /// Its hour field matches more than one hour (see the module's text).
    repeats_daily: bool,
}

/// How far around an instant wall-clock times are looked at (more than any zone's shift).
const SHIFT: chrono::Duration = chrono::Duration::hours(3);

impl Cron {
    /// Parse `expr` (5 or 6 fields) in `tz` (UTC if `None`).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Cron, String> {
        let fields = expr.split_whitespace().count();
        let expr = match fields {
            5 => format!("0 {expr}"),
            6 => expr.to_string(),
            n => {
                return Err(format!(
                "a cron expression has 5 fields (minute hour day month weekday) or 6 (seconds first), not {n}"
            ))
            }
        };
        let schedule = cron::Schedule::from_str(&expr)
            .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
        let tz = match tz {
            None => chrono_tz::UTC,
            Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                format!("`{name}` is not a time zone (an IANA name, e.g. Europe/Madrid)")
            })?,
        };
        let hours = expr.split_whitespace().nth(2).unwrap_or("*");
        let repeats_daily = hours.parse::<u32>().is_err();
        Ok(Cron {
            schedule,
            tz,
            repeats_daily,
        })
    }

    /// The zone's name.
    pub fn tz(&self) -> &'static str {
        self.tz.name()
    }

    /// The first tick after `at`: the earliest instant after `at` whose wall-clock time in the
    /// zone matches. Wall-clock times are walked in order (as if they were UTC, so no time
    /// is skipped or repeated by the walk itself) from a little before `at`'s, each mapped to
    /// the instants it names, until no later wall-clock time can name an earlier instant.
    pub fn after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::Offset;
        // The zone's offsets around `at` (two differ only near a change of the clocks): a
        // wall-clock time `w` names instants between `w - high` and `w - low`.
        let offset = |t: DateTime<Utc>| {
            let secs = t.with_timezone(&self.tz).offset().fix().local_minus_utc();
            chrono::Duration::seconds(secs.into())
        };
        let (a, b) = (offset(at - SHIFT), offset(at + SHIFT));
        let (low, high) = (a.min(b), a.max(b));
        let from = at + low - chrono::Duration::seconds(1);
        let mut best: Option<DateTime<Utc>> = None;
        for candidate in self.schedule.after(&from).take(100_000) {
            let naive = candidate.naive_utc();
            // No later wall-clock time can name an instant before the best one found.
            if best.is_some_and(|b| candidate >= b + high) {
                break;
            }
            for instant in self.instants(naive) {
                if instant > at && best.is_none_or(|b| instant < b) {
                    best = Some(instant);
                }
            }
        }
        best
    }

    /// The instants wall-clock time `naive` names in the zone (see the module's text).
    fn instants(&self, naive: chrono::NaiveDateTime) -> Vec<DateTime<Utc>> {
        use chrono::offset::LocalResult;
        use chrono::TimeZone;
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(first, second) if self.repeats_daily => {
                vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
            }
            LocalResult::Ambiguous(first, _) => vec![first.with_timezone(&Utc)],
            LocalResult::None if self.repeats_daily => Vec::new(),
            LocalResult::None => self
                .tz
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .into_iter()
                .collect(),
        }
    }
}

/// Ticks read from each row's own expression.
pub struct RowTicks;

impl Ticks for RowTicks {
    fn after(&self, row: &ScheduleRow, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match Cron::parse(&row.cron, Some(&row.tz)) {
            Ok(cron) => cron.after(at),
            Err(e) => {
                tracing::error!(schedule = %row.name, error = %e, "schedule cannot tick");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_in_a_time_zone() {
        let cron = Cron::parse("0 30 9 * * *", Some("Europe/Madrid")).unwrap();
        let winter = "2026-01-15T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            cron.after(winter).unwrap().to_rfc3339(),
            "2026-01-15T08:30:00+00:00"
        );
        let summer = "2026-07-15T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            cron.after(summer).unwrap().to_rfc3339(),
            "2026-07-15T07:30:00+00:00"
        );
        let five = Cron::parse("*/15 * * * *", None).unwrap();
        assert_eq!(
            five.after(winter).unwrap().to_rfc3339(),
            "2026-01-15T00:15:00+00:00"
        );
        assert!(Cron::parse("* * *", None).is_err());
        assert!(Cron::parse("0 0 3 * * *", Some("Mars/Olympus")).is_err());
        assert!(Cron::parse("0 61 3 * * *", None).is_err());
    }
}
