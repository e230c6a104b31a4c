//! Control over work: what a submission may ask for besides its kind and payload
//! ([`SubmitOptions`]: an idempotency key, a delay or a time to run at, a priority), and the
//! requests that act on work already accepted or still to come:
//!
//! - `CANCEL <id>` answers the task's view, now `cancelled`;
//! - `PAUSE <lane|kind> <name>` and `RESUME <lane|kind> <name>` (admin) answer [`Paused`], every
//!   target paused now; `PAUSE` alone lists them;
//! - `SCHEDULE ADD <name> [missed=once|skip] "<cron>" <kind> [payload]` (or `SCHEDULE ADD` and
//!   a [`NewSchedule`] as JSON), `SCHEDULE LIST` and `SCHEDULE REMOVE <name>` manage periodic
//!   tasks ([`ScheduleInfo`], [`ScheduleList`], [`ScheduleRemoved`]).

use crate::error::ProtocolError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 200;
/// The highest priority (runs first); 0, the default, is the lowest.
pub const PRIORITY_MAX: u8 = 9;
/// The furthest ahead a task may be scheduled.
pub const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

fn malformed(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

/// What a submission may ask for besides its kind, payload and wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// An idempotency key: the same owner submitting the same key again gets the first task.
    pub key: Option<String>,
    /// Run no sooner than this many milliseconds from now.
    pub delay_ms: Option<u64>,
    /// Run no sooner than this time.
    pub run_at: Option<DateTime<Utc>>,
    /// 0 (the default) to [`PRIORITY_MAX`]; higher runs first within its lane.
    pub priority: Option<u8>,
}

impl SubmitOptions {
    /// Whether nothing is asked for (a plain submission).
    pub fn is_plain(&self) -> bool {
        *self == SubmitOptions::default()
    }

    /// Options from their JSON fields, checked.
    pub fn checked(self) -> Result<Self, ProtocolError> {
        if let Some(key) = &self.key {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(malformed(format!(
                    "key must be 1 to {MAX_KEY_BYTES} bytes long"
                )));
            }
            if key.contains(['\0', '\n', '\r']) {
                return Err(malformed("key must not hold NUL or line breaks"));
            }
        }
        if self.delay_ms.is_some() && self.run_at.is_some() {
            return Err(malformed("give either delay_ms or run_at, not both"));
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return Err(malformed(format!(
                "delay_ms is at most {MAX_DELAY_MS} (366 days)"
            )));
        }
        if let Some(at) = self.run_at {
            let furthest = Utc::now() + chrono::Duration::milliseconds(MAX_DELAY_MS as i64);
            if at > furthest {
                return Err(malformed("run_at is at most 366 days ahead"));
            }
        }
        if self.priority.is_some_and(|p| p > PRIORITY_MAX) {
            return Err(malformed(format!(
                "priority is from 0 to {PRIORITY_MAX} (higher runs first)"
            )));
        }
        Ok(self)
    }

    /// When the task is due, if it is not due at once (a delay of 0 or a time past is now).
    pub fn due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = match (self.delay_ms, self.run_at) {
            (Some(ms), _) => now + chrono::Duration::milliseconds(ms as i64),
            (None, Some(at)) => at,
            (None, None) => return None,
        };
        (at > now).then_some(at)
    }

    pub fn priority(&self) -> u8 {
        self.priority.unwrap_or(0)
    }
}

/// What `PAUSE` and `RESUME` act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PauseTarget {
    Lane(String),
    Kind(String),
}

impl PauseTarget {
    /// `lane <name>` or `kind <name>` (also `lane:<name>`).
    pub fn parse(words: &str) -> Result<Self, ProtocolError> {
        let usage = "name a lane or a kind: `lane <name>` or `kind <name>`";
        let words = words.trim();
        let (what, name) = words
            .split_once([' ', '\t', ':'])
            .map(|(a, b)| (a, b.trim()))
            .ok_or_else(|| malformed(usage))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(malformed(usage));
        }
        let name = name.to_ascii_lowercase();
        match what.to_ascii_lowercase().as_str() {
            "lane" => Ok(PauseTarget::Lane(name)),
            "kind" => Ok(PauseTarget::Kind(name)),
            _ => Err(malformed(usage)),
        }
    }

    /// As stored and reported: `lane:<name>` or `kind:<name>`.
    pub fn as_string(&self) -> String {
        match self {
            PauseTarget::Lane(n) => format!("lane:{n}"),
            PauseTarget::Kind(n) => format!("kind:{n}"),
        }
    }

    pub fn to_words(&self) -> String {
        match self {
            PauseTarget::Lane(n) => format!("lane {n}"),
            PauseTarget::Kind(n) => format!("kind {n}"),
        }
    }
}

/// The answer to `PAUSE` and `RESUME`: every target paused now (`lane:<name>`, `kind:<name>`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub paused: Vec<String>,
}

/// What to do with the ticks of a schedule missed while every node was down.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    /// Run once for all of them, on recovery.
    #[default]
    Once,
    /// Skip them; the next tick runs as usual.
    Skip,
}

impl Missed {
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Once => "once",
            Missed::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "once" => Some(Missed::Once),
            "skip" => Some(Missed::Skip),
            _ => None,
        }
    }
}

/// A periodic task: `SCHEDULE ADD` and `POST /v1/schedules`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub name: String,
    /// A cron expression of 5 fields (minute to weekday) or 6 (seconds first), for example
    /// `0 30 9 * * Mon-Fri`.
    pub cron: String,
    /// The time zone the expression is read in (IANA name); UTC if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub missed: Missed,
}

/// A schedule as listed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub cron: String,
    pub tz: String,
    pub kind: String,
    pub payload: String,
    pub missed: Missed,
    /// The next tick.
    pub next_at: DateTime<Utc>,
    /// The last tick that made a task, and that task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task: Option<uuid::Uuid>,
    /// The token that added it (its tasks are that token's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Ticks not run because its token was over a limit (`max_inflight`, `rate`), and why
    /// the last were not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skip: Option<String>,
    /// Its token was revoked: it ticks no more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `SCHEDULE LIST`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleInfo>,
}

/// `SCHEDULE REMOVE`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRemoved {
    pub removed: String,
}

/// A `SCHEDULE` request.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleCommand {
    Add(NewSchedule),
    List,
    Remove(String),
}

impl ScheduleCommand {
    /// The words after `SCHEDULE`.
    pub fn parse(rest: &str) -> Result<Self, ProtocolError> {
        let usage = "usage: SCHEDULE ADD <name> [missed=once|skip] \"<cron>\" <kind> [payload] | SCHEDULE LIST | SCHEDULE REMOVE <name>";
        let rest = rest.trim_start();
        let (verb, args) = match rest.find([' ', '\t']) {
            Some(i) => (&rest[..i], rest[i..].trim_start()),
            None => (rest, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "LIST" if args.trim().is_empty() => Ok(ScheduleCommand::List),
            "REMOVE" if !args.trim().is_empty() && !args.trim().contains(char::is_whitespace) => {
                Ok(ScheduleCommand::Remove(args.trim().to_string()))
            }
            "ADD" if args.starts_with('{') => serde_json::from_str(args)
                .map(ScheduleCommand::Add)
                .map_err(|e| malformed(format!("bad schedule JSON ({e}); {usage}"))),
            "ADD" => parse_add(args).map(ScheduleCommand::Add),
            _ => Err(malformed(usage)),
        }
    }

    pub fn to_words(&self) -> String {
        match self {
            ScheduleCommand::Add(new) => format!(
                "ADD {}",
                serde_json::to_string(new).expect("a schedule serializes")
            ),
            ScheduleCommand::List => "LIST".into(),
            ScheduleCommand::Remove(name) => format!("REMOVE {name}"),
        }
    }
}

/// `<name> [missed=…] "<cron>" <kind> [payload]`; the cron may start with `TZ=<zone> `.
fn parse_add(args: &str) -> Result<NewSchedule, ProtocolError> {
    let usage = "usage: SCHEDULE ADD <name> [missed=once|skip] \"<cron>\" <kind> [payload], e.g. SCHEDULE ADD nightly \"TZ=Europe/Madrid 0 0 3 * * *\" upper hello";
    let (name, mut rest) = args
        .split_once([' ', '\t'])
        .ok_or_else(|| malformed(usage))?;
    rest = rest.trim_start();
    let mut missed = Missed::default();
    if let Some(after) = rest.strip_prefix("missed=") {
        let (word, more) = after.split_once([' ', '\t']).unwrap_or((after, ""));
        missed = Missed::parse(word).ok_or_else(|| malformed("missed is once or skip"))?;
        rest = more.trim_start();
    }
    let quoted = rest.strip_prefix('"').ok_or_else(|| malformed(usage))?;
    let (cron, rest) = quoted.split_once('"').ok_or_else(|| malformed(usage))?;
    let rest = rest.trim_start();
    let (kind, payload) = match rest.find([' ', '\t']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    if kind.is_empty() {
        return Err(malformed(usage));
    }
    let cron = cron.trim();
    let (tz, cron) = match cron.strip_prefix("TZ=") {
        Some(after) => {
            let (zone, expr) = after.split_once(' ').ok_or_else(|| malformed(usage))?;
            (Some(zone.to_string()), expr.trim())
        }
        None => (None, cron),
    };
    Ok(NewSchedule {
        name: name.to_string(),
        cron: cron.to_string(),
        tz,
        kind: kind.to_ascii_lowercase(),
        payload: payload.to_string(),
        missed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = SubmitOptions {
            key: Some("order-17".into()),
            delay_ms: Some(1000),
            priority: Some(9),
            ..Default::default()
        };
        assert!(ok.clone().checked().is_ok());
        let both = SubmitOptions {
            run_at: Some(Utc::now()),
            ..ok.clone()
        };
        assert!(both.checked().is_err());
        let loud = SubmitOptions {
            priority: Some(10),
            ..Default::default()
        };
        assert!(loud.checked().is_err());
        let long = SubmitOptions {
            key: Some("k".repeat(MAX_KEY_BYTES + 1)),
            ..Default::default()
        };
        assert!(long.checked().is_err());
        let far = SubmitOptions {
            delay_ms: Some(MAX_DELAY_MS + 1),
            ..Default::default()
        };
        assert!(far.checked().is_err());
    }

    #[test]
    fn a_task_is_due_later_only_for_a_time_ahead() {
        let now = Utc::now();
        let later = SubmitOptions {
            delay_ms: Some(1500),
            ..Default::default()
        };
        assert_eq!(
            later.due(now),
            Some(now + chrono::Duration::milliseconds(1500))
        );
        let past = SubmitOptions {
            run_at: Some(now - chrono::Duration::seconds(5)),
            ..Default::default()
        };
        assert_eq!(past.due(now), None);
        assert_eq!(SubmitOptions::default().due(now), None);
    }

    #[test]
    fn pause_targets() {
        assert_eq!(
            PauseTarget::parse("lane slow").unwrap(),
            PauseTarget::Lane("slow".into())
        );
        assert_eq!(
            PauseTarget::parse("KIND:Sleep").unwrap(),
            PauseTarget::Kind("sleep".into())
        );
        assert!(PauseTarget::parse("slow").is_err());
        assert!(PauseTarget::parse("queue slow").is_err());
        let t = PauseTarget::Kind("sleep".into());
        assert_eq!(PauseTarget::parse(&t.to_words()).unwrap(), t);
    }

    #[test]
    fn schedules_in_words_and_json() {
        let add = ScheduleCommand::parse(
            "ADD nightly missed=skip \"TZ=Europe/Madrid 0 0 3 * * *\" upper hello  world",
        )
        .unwrap();
        let expected = NewSchedule {
            name: "nightly".into(),
            cron: "0 0 3 * * *".into(),
            tz: Some("Europe/Madrid".into()),
            kind: "upper".into(),
            payload: "hello  world".into(),
            missed: Missed::Skip,
        };
        assert_eq!(add, ScheduleCommand::Add(expected.clone()));
        assert_eq!(ScheduleCommand::parse(&add.to_words()).unwrap(), add);
        let plain = ScheduleCommand::parse("add tick \"* * * * * *\" echo").unwrap();
        let ScheduleCommand::Add(plain) = plain else {
            panic!("an add")
        };
        assert_eq!((plain.tz, plain.missed), (None, Missed::Once));
        assert_eq!(
            ScheduleCommand::parse("list").unwrap(),
            ScheduleCommand::List
        );
        assert_eq!(
            ScheduleCommand::parse("REMOVE nightly").unwrap(),
            ScheduleCommand::Remove("nightly".into())
        );
        for bad in ["", "ADD x", "ADD x * * * upper", "REMOVE", "LIST all"] {
            assert!(ScheduleCommand::parse(bad).is_err(), "{bad}");
        }
    }
}
