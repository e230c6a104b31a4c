//! Workers of any language: a connection that says `WORK <kind>[,<kind>…] [slots=N]` is given
//! tasks of those kinds, one line each, while it has free slots, and answers each with
//! `DONE`, `FAIL`, `PROGRESS` or `EXTEND` naming the task's lease.
//!
//! The lease is a fence: an answer whose lease is no longer current (its deadline passed,
//! the task was cancelled, or it went to another worker) is refused `lease_lost` and changes
//! nothing.

mod lines;

pub use lines::*;

use crate::error::ProtocolError;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The most tasks one worker connection may hold at once.
pub const MAX_SLOTS: u16 = 256;
/// The longest external kind name.
pub const MAX_KIND_LEN: usize = 64;
/// The longest lease (a random part and the holding node's name).
pub const MAX_LEASE_LEN: usize = 200;
/// The longest `FAIL` message or `PROGRESS` note kept.
pub const MAX_NOTE_LEN: usize = 4096;

/// A worker's request.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkCommand {
    /// `WORK <kind>[,<kind>…] [slots=N] [stream=1]`: become a worker for these kinds; with
    /// `stream`, a payload past the inline limit comes as raw bytes after its task line.
    Work {
        kinds: Vec<String>,
        slots: u16,
        stream: bool,
    },
    /// `DONE <lease> <result text>` or `{"done":"<lease>","result":…|"result_base64":…}`.
    Done { lease: String, result: Vec<u8> },
    /// `DONE <lease> PUT <nbytes>`, then exactly `nbytes` raw bytes: a result of any size.
    DonePut { lease: String, size: u64 },
    /// `FAIL <lease> [final] <message>`: retried with the usual backoff unless `final`.
    Fail {
        lease: String,
        last: bool,
        message: String,
    },
    /// `PROGRESS <lease> <0-100> [note]`.
    Progress {
        lease: String,
        percent: u8,
        note: Option<String>,
    },
    /// `EXTEND <lease> <seconds>`: the lease's deadline becomes now + seconds (never past
    /// the kind's maximum).
    Extend { lease: String, secs: u64 },
    /// `QUIET`: take no new tasks on this connection (a worker stopping); those held go on.
    Quiet,
}

fn malformed(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

/// Whether `name` may be an external kind's name: lowercase letters, digits, `_`, `-` and
/// `.`, starting with a letter or digit, at most [`MAX_KIND_LEN`] bytes (it names queues).
pub fn valid_kind_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_KIND_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c))
}

/// Whether `lease` may be a lease: letters, digits, `-`, `_` and `.` (it goes in URLs).
pub fn valid_lease(lease: &str) -> bool {
    !lease.is_empty()
        && lease.len() <= MAX_LEASE_LEN
        && lease
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn lease_word(rest: &str, cmd: &str, usage: &str) -> Result<(String, String), ProtocolError> {
    let (lease, rest) = crate::request::split_word(rest);
    if lease.is_empty() {
        return Err(malformed(format!("{cmd} needs a lease; usage: {usage}")));
    }
    if !valid_lease(lease) {
        return Err(malformed(format!("`{lease}` is not a lease")));
    }
    Ok((lease.to_string(), rest.to_string()))
}

/// `text` cut to [`MAX_NOTE_LEN`] bytes (at a character boundary).
pub fn note(text: &str) -> String {
    let mut end = text.len().min(MAX_NOTE_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl WorkCommand {
    /// Parse the rest of a line whose first word (upper-cased) is `command`; `None` when
    /// `command` is not a worker's.
    pub fn parse(command: &str, rest: &str) -> Option<Result<WorkCommand, ProtocolError>> {
        Some(match command {
            "WORK" => parse_work(rest),
            "DONE" => parse_done(rest),
            "FAIL" => parse_fail(rest),
            "PROGRESS" => parse_progress(rest),
            "EXTEND" => parse_extend(rest),
            "QUIET" if rest.trim().is_empty() => Ok(WorkCommand::Quiet),
            "QUIET" => Err(malformed("QUIET takes no arguments")),
            _ => return None,
        })
    }

    /// The JSON form `{"done":"<lease>","result":…}`, when `text` is one.
    pub fn parse_json(text: &str) -> Option<Result<WorkCommand, ProtocolError>> {
        if !text.contains("\"done\"") {
            return None;
        }
        let done: JsonDone = serde_json::from_str(text).ok()?;
        let result = match (done.result, done.result_base64) {
            (Some(text), None) => Ok(text.into_bytes()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| malformed(format!("result_base64 is not base64: {e}"))),
            (None, None) => Ok(Vec::new()),
            (Some(_), Some(_)) => Err(malformed("give either result or result_base64, not both")),
        };
        Some(result.and_then(|result| {
            let (lease, _) = lease_word(&done.done, "done", "{\"done\":\"<lease>\",\"result\":…}")?;
            Ok(WorkCommand::Done { lease, result })
        }))
    }

    /// The command as a line (without its newline) that [`WorkCommand::parse`] reads back.
    pub fn to_words(&self) -> String {
        match self {
            WorkCommand::Work {
                kinds,
                slots,
                stream,
            } => {
                let stream = if *stream { " stream=1" } else { "" };
                format!("WORK {} slots={slots}{stream}", kinds.join(","))
            }
            WorkCommand::Done { lease, result } => match std::str::from_utf8(result) {
                Ok(text)
                    if !text.contains(['\n', '\r', '\0']) && !text.starts_with([' ', '\t']) =>
                {
                    let text_is_put = text.split_whitespace().next() == Some("PUT");
                    match text_is_put {
                        false if text.is_empty() => format!("DONE {lease}"),
                        false => format!("DONE {lease} {text}"),
                        true => json_done(lease, result),
                    }
                }
                _ => json_done(lease, result),
            },
            WorkCommand::DonePut { lease, size } => format!("DONE {lease} PUT {size}"),
            WorkCommand::Fail {
                lease,
                last,
                message,
            } => {
                let message = message.replace(['\n', '\r'], " ");
                match last {
                    true => format!("FAIL {lease} final {message}"),
                    false => format!("FAIL {lease} {message}"),
                }
            }
            WorkCommand::Progress {
                lease,
                percent,
                note,
            } => match note {
                Some(n) => format!(
                    "PROGRESS {lease} {percent} {}",
                    n.replace(['\n', '\r'], " ")
                ),
                None => format!("PROGRESS {lease} {percent}"),
            },
            WorkCommand::Extend { lease, secs } => format!("EXTEND {lease} {secs}"),
            WorkCommand::Quiet => "QUIET".into(),
        }
    }

    /// The lease the command names (none for `WORK`).
    pub fn lease(&self) -> Option<&str> {
        match self {
            WorkCommand::Work { .. } | WorkCommand::Quiet => None,
            WorkCommand::Done { lease, .. }
            | WorkCommand::DonePut { lease, .. }
            | WorkCommand::Fail { lease, .. }
            | WorkCommand::Progress { lease, .. }
            | WorkCommand::Extend { lease, .. } => Some(lease),
        }
    }
}

fn json_done(lease: &str, result: &[u8]) -> String {
    let (result, result_base64) = match std::str::from_utf8(result) {
        Ok(text) if !text.contains('\0') => (Some(text.to_string()), None),
        _ => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(result)),
        ),
    };
    let done = JsonDone {
        done: lease.to_string(),
        result,
        result_base64,
    };
    serde_json::to_string(&done).expect("a DONE serializes")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDone {
    done: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_base64: Option<String>,
}

fn parse_work(rest: &str) -> Result<WorkCommand, ProtocolError> {
    let usage = "WORK <kind>[,<kind>…] [slots=N] [stream=1]";
    let mut words = rest.split_whitespace();
    let list = words
        .next()
        .ok_or_else(|| malformed(format!("WORK needs kinds; usage: {usage}")))?;
    let mut kinds: Vec<String> = Vec::new();
    for kind in list.split(',').map(|k| k.trim().to_ascii_lowercase()) {
        if !valid_kind_name(&kind) {
            return Err(malformed(format!(
                "`{kind}` is not a kind name (lowercase letters, digits, `_`, `-`, `.`; at most {MAX_KIND_LEN} bytes)"
            )));
        }
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.len() > 64 {
        return Err(malformed("WORK takes at most 64 kinds"));
    }
    let (mut slots, mut stream) = (1, false);
    for word in words {
        match word.split_once('=') {
            Some(("stream", "1")) => stream = true,
            Some(("stream", "0")) => stream = false,
            Some(("slots", n)) => {
                slots = n
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=MAX_SLOTS).contains(n))
                    .ok_or_else(|| malformed(format!("slots must be from 1 to {MAX_SLOTS}")))?
            }
            _ => return Err(malformed(format!("unexpected `{word}`; usage: {usage}"))),
        }
    }
    Ok(WorkCommand::Work {
        kinds,
        slots,
        stream,
    })
}

fn parse_done(rest: &str) -> Result<WorkCommand, ProtocolError> {
    let usage = "DONE <lease> <result> | DONE <lease> PUT <nbytes>";
    let (lease, result) = lease_word(rest, "DONE", usage)?;
    let mut words = result.split_whitespace();
    if words.next() == Some("PUT") {
        let size = words
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| malformed(format!("PUT needs a size; usage: {usage}")))?;
        if words.next().is_some() {
            return Err(malformed(format!("usage: {usage}")));
        }
        return Ok(WorkCommand::DonePut { lease, size });
    }
    Ok(WorkCommand::Done {
        lease,
        result: result.into_bytes(),
    })
}

fn parse_fail(rest: &str) -> Result<WorkCommand, ProtocolError> {
    let (lease, rest) = lease_word(rest, "FAIL", "FAIL <lease> [final] <message>")?;
    let (first, after) = crate::request::split_word(&rest);
    let (last, message) = match first.eq_ignore_ascii_case("final") {
        true => (true, after),
        false => (false, rest.as_str()),
    };
    let message = match message.trim() {
        "" => "failed (no message)".to_string(),
        m => note(m),
    };
    Ok(WorkCommand::Fail {
        lease,
        last,
        message,
    })
}

fn parse_progress(rest: &str) -> Result<WorkCommand, ProtocolError> {
    let usage = "PROGRESS <lease> <0-100> [note]";
    let (lease, rest) = lease_word(rest, "PROGRESS", usage)?;
    let (pct, text) = crate::request::split_word(&rest);
    let percent = pct
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| {
            malformed(format!(
                "progress is a whole number from 0 to 100; usage: {usage}"
            ))
        })?;
    let note = Some(text.trim()).filter(|t| !t.is_empty()).map(note);
    Ok(WorkCommand::Progress {
        lease,
        percent,
        note,
    })
}

fn parse_extend(rest: &str) -> Result<WorkCommand, ProtocolError> {
    let usage = "EXTEND <lease> <seconds>";
    let (lease, rest) = lease_word(rest, "EXTEND", usage)?;
    let secs = rest
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=86_400).contains(s))
        .ok_or_else(|| malformed(format!("seconds must be from 1 to 86400; usage: {usage}")))?;
    Ok(WorkCommand::Extend { lease, secs })
}

#[cfg(test)]
mod tests;
