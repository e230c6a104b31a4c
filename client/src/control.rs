//! Control over work from taskctl: a submission's `--key`, `--in`/`--at` and `--priority`;
//! `cancel`; `pause`/`resume` (admin); `schedule add|list|remove`.

use crate::output::print_json;
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use protocol::{
    Client, Missed, NewSchedule, PauseTarget, Paused, Request, ScheduleCommand, ScheduleInfo,
    ScheduleList, ScheduleRemoved, SubmitOptions,
};

/// A submission's options.
#[derive(Args, Clone, Debug, Default)]
pub struct SubmitFlags {
    /// An idempotency key: submitting the same key again gives back the first task.
    #[arg(long)]
    key: Option<String>,
    /// Run no sooner than this from now: `90s`, `10m`, `2h`, `1d`, `500ms`.
    #[arg(long = "in", value_name = "DELAY", conflicts_with = "at")]
    delay: Option<String>,
    /// Run no sooner than this time (RFC 3339, e.g. 2026-12-24T18:00:00+01:00).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// 0 (the default) to 9; higher runs first within its lane.
    #[arg(long)]
    priority: Option<u8>,
}

impl SubmitFlags {
    pub fn options(&self) -> anyhow::Result<SubmitOptions> {
        let delay_ms = self.delay.as_deref().map(duration_ms).transpose()?;
        let run_at = match &self.at {
            Some(at) => Some(
                chrono::DateTime::parse_from_rfc3339(at)
                    .with_context(|| format!("--at `{at}` is not an RFC 3339 time"))?
                    .with_timezone(&chrono::Utc),
            ),
            None => None,
        };
        let options = SubmitOptions {
            key: self.key.clone(),
            delay_ms,
            run_at,
            priority: self.priority,
        };
        options.checked().map_err(|e| anyhow!("{e}"))
    }
}

/// `90s`, `10m`, `2h`, `1d`, `500ms` (or a bare number of seconds) in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a delay like 90s, 10m, 2h"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => bail!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d"),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| anyhow!("`{text}` is too long a delay"))
}

/// `taskctl schedule …`.
#[derive(Subcommand, Clone)]
pub enum ScheduleCmd {
    /// Add a periodic task (or replace the schedule of that name).
    Add {
        name: String,
        /// A cron expression: 5 fields (minute hour day month weekday) or 6 (seconds first).
        cron: String,
        kind: String,
        /// Payload text; several words are joined with spaces.
        payload: Vec<String>,
        /// The time zone the expression is read in (IANA name); UTC by default.
        #[arg(long)]
        tz: Option<String>,
        /// Ticks missed while every node was down: `once` (run once on recovery) or `skip`.
        #[arg(long, default_value = "once")]
        missed: String,
    },
    /// The schedules (a token's own; every one for an admin).
    List,
    /// Remove a schedule.
    Remove { name: String },
}

/// `lane <name>` or `kind <name>`.
#[derive(Args, Clone)]
pub struct Target {
    /// `lane` or `kind`.
    what: String,
    name: String,
}

impl Target {
    fn parse(&self) -> anyhow::Result<PauseTarget> {
        PauseTarget::parse(&format!("{} {}", self.what, self.name)).map_err(|e| anyhow!("{e}"))
    }
}

fn print_paused(p: &Paused, json: bool) {
    if json {
        return print_json(p);
    }
    match p.paused.is_empty() {
        true => println!("nothing is paused"),
        false => println!("paused: {}", p.paused.join(", ")),
    }
}

/// `pause [lane|kind NAME]`.
pub async fn pause(conn: &mut Client, target: Option<Target>, json: bool) -> anyhow::Result<()> {
    let target = target.as_ref().map(Target::parse).transpose()?;
    let p: Paused = conn.call(&Request::Pause(target)).await?;
    print_paused(&p, json);
    Ok(())
}

/// `resume lane|kind NAME`.
pub async fn resume(conn: &mut Client, target: Target, json: bool) -> anyhow::Result<()> {
    let p: Paused = conn.call(&Request::Resume(target.parse()?)).await?;
    print_paused(&p, json);
    Ok(())
}

fn schedule_line(s: &ScheduleInfo) -> String {
    format!(
        "{}\t{}\t{}\t{} {}\t{}\t{}",
        s.name,
        s.cron,
        s.tz,
        s.kind,
        s.payload,
        s.missed.as_str(),
        s.next_at.to_rfc3339()
    )
}

/// `schedule …`.
pub async fn schedule(conn: &mut Client, cmd: ScheduleCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        ScheduleCmd::Add {
            name,
            cron,
            kind,
            payload,
            tz,
            missed,
        } => {
            let missed = Missed::parse(&missed)
                .ok_or_else(|| anyhow!("--missed is once or skip, not `{missed}`"))?;
            let new = NewSchedule {
                name,
                cron,
                tz,
                kind,
                payload: payload.join(" "),
                missed,
            };
            let added: ScheduleInfo = conn
                .call(&Request::Schedule(ScheduleCommand::Add(new)))
                .await?;
            match json {
                true => print_json(&added),
                false => println!(
                    "schedule `{}` added; next run {}",
                    added.name,
                    added.next_at.to_rfc3339()
                ),
            }
        }
        ScheduleCmd::List => {
            let list: ScheduleList = conn.call(&Request::Schedule(ScheduleCommand::List)).await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            println!("NAME\tCRON\tTZ\tTASK\tMISSED\tNEXT");
            for s in &list.schedules {
                println!("{}", schedule_line(s));
            }
        }
        ScheduleCmd::Remove { name } => {
            let gone: ScheduleRemoved = conn
                .call(&Request::Schedule(ScheduleCommand::Remove(name)))
                .await?;
            match json {
                true => print_json(&gone),
                false => println!("schedule `{}` removed", gone.removed),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_as_people_write_them() {
        assert_eq!(duration_ms("90s").unwrap(), 90_000);
        assert_eq!(duration_ms("10m").unwrap(), 600_000);
        assert_eq!(duration_ms("2h").unwrap(), 7_200_000);
        assert_eq!(duration_ms("500ms").unwrap(), 500);
        assert_eq!(duration_ms("15").unwrap(), 15_000);
        assert!(duration_ms("10 parsecs").is_err());
        assert!(duration_ms("soon").is_err());
    }
}
