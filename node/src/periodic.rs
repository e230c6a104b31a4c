//! Periodic tasks' cron expressions, with a time zone ([`crate::db::schedules`]).
//!
//! Five fields (minute hour day-of-month month day-of-week) or six (seconds first), as the
//! `cron` crate reads them (`Mon-Fri`, `*/15`, `1,15`), evaluated in an IANA time zone, so
//! `0 30 9 * * Mon-Fri` in `Europe/Madrid` runs at half past nine there in winter and summer.

use crate::db::schedules::{ScheduleRow, Ticks};
use chrono::{DateTime, Utc};
use std::str::FromStr;

/// A parsed expression and its zone.
#[derive(Debug, Clone)]
pub struct Cron {
    schedule: cron::Schedule,
    tz: chrono_tz::Tz,
}

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
        Ok(Cron { schedule, tz })
    }

    /// The zone's name.
    pub fn tz(&self) -> &'static str {
        self.tz.name()
    }

    /// The first tick after `at`.
    pub fn after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&at.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
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
