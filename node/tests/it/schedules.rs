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
        owner: String::new(),
        next_at: now - chrono::Duration::days(30),
        last_at: None,
        last_task: None,
        skipped: 0,
        last_skip: None,
        disabled_at: None,
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

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tasknode::auth::{tokens::Limits, Role};
use tasknode::db::schema::tasks;
use tasknode_testkit::{connect_as, poll_until, Lines, TestEnv};

/// Tasks of `owner` in `env`.
async fn tasks_of(env: &TestEnv, owner: &str) -> Vec<(String, String)> {
    tasks::table
        .filter(tasks::owner.eq(owner))
        .select((tasks::kind, tasks::status))
        .load(&mut env.db().await)
        .await
        .unwrap()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[actix_rt::test]
async fn a_tokens_schedules_are_its_own_and_at_most_its_max_schedules() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n").await;
    let two = Limits {
        max_schedules: Some(2),
        ..Default::default()
    };
    let a = env.token("a", Role::Submit, two).await;
    let b = env.token("b", Role::Submit, Limits::default()).await;
    let mut a = connect_as(node.addr, &a).await;
    let mut b = connect_as(node.addr, &b).await;
    for name in ["s1", "s2"] {
        let r = a
            .ask(&format!("SCHEDULE ADD {name} \"0 0 3 * * *\" echo x"))
            .await;
        assert_eq!(r["name"], name, "{r}");
    }
    let r = a.ask("SCHEDULE ADD s3 \"0 0 3 * * *\" echo x").await;
    assert_eq!(r["error"], "quota_exceeded", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("max_schedules"),
        "{r}"
    );
    // Replacing one of its own is not one more.
    let r = a.ask("SCHEDULE ADD s1 \"0 0 4 * * *\" echo y").await;
    assert_eq!(r["cron"], "0 0 4 * * *", "{r}");
    // Another token's `s1` is another schedule: nothing of a's is revealed or touched.
    let r = b.ask("SCHEDULE ADD s1 \"0 0 5 * * *\" echo z").await;
    assert_eq!(r["name"], "s1", "{r}");
    assert_eq!(names(&a.ask("SCHEDULE LIST").await), ["s1", "s2"]);
    let theirs = b.ask("SCHEDULE LIST").await;
    assert_eq!(names(&theirs), ["s1"]);
    assert_eq!(theirs["schedules"][0]["cron"], "0 0 5 * * *");
    let r = b.ask("SCHEDULE REMOVE s2").await;
    assert_eq!(r["error"], "not_found", "{r}");
    let all = node.connect().await.ask("SCHEDULE LIST").await;
    assert_eq!(names(&all).len(), 3, "an admin sees every one: {all}");
}

#[actix_rt::test]
async fn ticks_over_the_owners_max_inflight_are_skipped_and_shown() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n").await;
    let one = Limits {
        max_inflight: Some(1),
        ..Default::default()
    };
    let c = env.token("c", Role::Submit, one).await;
    let mut c = connect_as(node.addr, &c).await;
    // Each tick's task runs a minute; the token may have one unfinished.
    let r = c.ask("SCHEDULE ADD busy \"* * * * * *\" sleep 60000").await;
    assert_eq!(r["name"], "busy", "{r}");
    let listed = poll_until("ticks are skipped", 30, async || {
        let list = c.ask("SCHEDULE LIST").await;
        (list["schedules"][0]["skipped"].as_u64() >= Some(2)).then_some(list)
    })
    .await;
    let why = listed["schedules"][0]["last_skip"].as_str().unwrap();
    assert!(why.contains("max_inflight of 1"), "{why}");
    let made = tasks_of(&env, "c").await;
    assert_eq!(made.len(), 1, "one task, the rest skipped: {made:?}");
}

#[actix_rt::test]
async fn revoking_a_token_disables_its_schedules() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n").await;
    let d = env.token("d", Role::Submit, Limits::default()).await;
    let mut d = connect_as(node.addr, &d).await;
    let mut admin = node.connect().await;
    d.ask("SCHEDULE ADD d-tick \"* * * * * *\" echo d").await;
    admin
        .ask("SCHEDULE ADD admin-tick \"* * * * * *\" echo a")
        .await;
    poll_until("d's schedule ticks", 20, async || {
        (!tasks_of(&env, "d").await.is_empty()).then_some(())
    })
    .await;
    env.revoke("d").await;
    let listed = admin.ask("SCHEDULE LIST").await;
    let theirs = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "d-tick")
        .cloned()
        .unwrap();
    assert_eq!(theirs["disabled"], true, "{theirs}");
    // Three more ticks of the admin's schedule: none more of d's.
    let before = tasks_of(&env, "d").await.len();
    let admins = tasks_of(&env, "admin").await.len();
    poll_until("three more ticks", 20, async || {
        (tasks_of(&env, "admin").await.len() >= admins + 3).then_some(())
    })
    .await;
    assert_eq!(tasks_of(&env, "d").await.len(), before);
}
