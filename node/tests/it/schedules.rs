//! Periodic tasks: ticks where the clocks change, catching up, and schedules within a token's
//! limits.

use chrono::{DateTime, Utc};
use tasknode::db::schedules::{due_ticks, ScheduleRow};
use tasknode::periodic::{Cron, RowTicks};

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// The first `n` ticks of `cron` in `tz` after `from`, as RFC 3339 UTC times.
fn ticks(cron: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    let cron = Cron::parse(cron, Some(tz)).unwrap();
    let mut at = at(from);
    let mut out = Vec::new();
    for _ in 0..n {
        at = cron.after(at).expect("a next tick");
        out.push(at.format("%Y-%m-%dT%H:%MZ").to_string());
    }
    out
}

#[test]
fn where_the_clocks_go_back_a_repeating_schedule_ticks_through_both_hours() {
    // Madrid, 2026-10-25: 03:00 summer time is 02:00 winter time again (at 01:00 UTC).
    assert_eq!(
        ticks("0 */15 * * * *", "Europe/Madrid", "2026-10-25T00:30:00Z", 6),
        [
            "2026-10-25T00:45Z",
            "2026-10-25T01:00Z",
            "2026-10-25T01:15Z",
            "2026-10-25T01:30Z",
            "2026-10-25T01:45Z",
            "2026-10-25T02:00Z"
        ]
    );
    // A schedule added in the repeated hour: its first tick is ahead, not behind.
    assert_eq!(
        ticks("0 */15 * * * *", "Europe/Madrid", "2026-10-25T01:20:00Z", 1),
        ["2026-10-25T01:30Z"]
    );
    // A fixed time in the repeated hour runs once that day.
    assert_eq!(
        ticks("0 30 2 * * *", "Europe/Madrid", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30Z", "2026-10-26T01:30Z"]
    );
}

#[test]
fn where_the_clocks_go_forward_skipped_times_are_skipped_or_run_an_hour_later() {
    // Madrid, 2026-03-29: 02:00 winter time is 03:00 summer time (at 01:00 UTC).
    assert_eq!(
        ticks("0 */15 * * * *", "Europe/Madrid", "2026-03-29T00:40:00Z", 2),
        ["2026-03-29T00:45Z", "2026-03-29T01:00Z"]
    );
    assert_eq!(
        ticks("0 30 2 * * *", "Europe/Madrid", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:30Z", "2026-03-30T00:30Z"]
    );
    // Where the clocks do not change, nothing changes.
    assert_eq!(
        ticks("0 30 9 * * *", "Europe/Madrid", "2026-07-15T00:00:00Z", 1),
        ["2026-07-15T07:30Z"]
    );
}

#[test]
fn a_schedule_thirty_days_behind_catches_up_in_one_short_step() {
    let now = at("2026-12-05T12:00:00Z");
    let row = ScheduleRow {
        name: "every-second".into(),
        cron: "* * * * * *".into(),
        tz: "UTC".into(),
        kind: "echo".into(),
        payload: b"tick".to_vec(),
        missed: "once".into(),
        owner: None,
        next_at: now - chrono::Duration::days(30),
        last_at: None,
        last_task: None,
    };
    let (due, next) = due_ticks(&row, &RowTicks, now);
    // The ticks of the last ten seconds run (late, not missed); the month before is skipped
    // over, not counted through.
    assert!((10..=11).contains(&due.len()), "{}", due.len());
    assert!(due
        .iter()
        .all(|t| now - *t <= chrono::Duration::seconds(10)));
    assert_eq!(next, Some(now + chrono::Duration::seconds(1)));
}
