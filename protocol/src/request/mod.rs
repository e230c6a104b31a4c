//! Requests: one line each. [`Request::parse`] reads a line as a node does; [`Request::to_line`]
//! writes one that parses back to the same request (a client's side).

mod submit;

use crate::control::{PauseTarget, ScheduleCommand, SubmitOptions};
use crate::error::ProtocolError;
use crate::token::TokenCommand;
use crate::work::WorkCommand;
use submit::{parse_json, parse_put, submit_line};
use uuid::Uuid;

/// The text `HELP` answers with, one entry per line; also the README's protocol section.
pub const HELP: &[&str] = &[
    "<kind> <payload>          run a task and wait for its result, e.g. `upper hello world`",
    "SUBMIT <kind> <payload>   queue a task and answer at once with its id",
    "PUT <kind> <nbytes> [ASYNC]  then exactly <nbytes> raw bytes: binary-safe upload, streamed to the object store",
    "STATUS <id>               state of any task, whichever node accepted it",
    "RESULT <id>               result of a finished task; a large result answers a header line with \"bytes\":N, then N raw bytes",
    "DEAD [limit]              tasks that failed every attempt (newest first, default 50)",
    "RETRY <id>                run a dead or failed task again, with a fresh attempt budget",
    "CANCEL <id>               a queued or scheduled task never runs; a running one is stopped",
    "PAUSE [lane|kind <name>] | RESUME lane|kind <name>   hold a lane's or a kind's tasks (accepted, not run) and let them go (admin)",
    "SCHEDULE ADD <name> [missed=once|skip] \"[TZ=<zone> ]<cron>\" <kind> [payload] | SCHEDULE LIST | SCHEDULE REMOVE <name>   periodic tasks",
    "KINDS                     the task kinds this node knows",
    "AUTH <token>              who you are; needed before anything but PING, HELP and QUIT",
    "TOKEN CREATE <name> <role> [max_inflight=N] [rate=N] [max_payload=N] [max_schedules=N] | TOKEN LIST | TOKEN REVOKE <name>   manage tokens (admin)",
    "PING                      whether this node and its dependencies answer",
    "HELP                      this text",
    "QUIT                      close the connection",
    "WORK <kind>[,<kind>…] [slots=N]   become a worker for these kinds (role worker): tasks come as {\"task\":{…,\"lease\":…}} lines",
    "DONE <lease> <result> | DONE <lease> PUT <nbytes> | FAIL <lease> [final] <message> | PROGRESS <lease> <0-100> [note] | EXTEND <lease> <seconds> | QUIET (no new tasks)   a worker's answers",
    "{\"kind\":..,\"payload\":..,\"wait\":true}  the same as a JSON object (payload_base64 for binary)",
    "  with \"key\":\"order-17\" (idempotency), \"delay_ms\":N or \"run_at\":\"<RFC 3339>\", \"priority\":0..9",
];

/// `DEAD` without a limit lists this many.
pub const DEAD_DEFAULT: u32 = 50;
/// The largest `DEAD` limit.
pub const DEAD_MAX: u32 = 10_000;

/// A request line.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Run `kind` on `payload`; answer with the result (`wait`) or at once with the id.
    Submit {
        kind: String,
        payload: Vec<u8>,
        wait: bool,
        /// Key, delay and priority (JSON submissions only).
        options: SubmitOptions,
    },
    /// `PUT <kind> <nbytes> [ASYNC]`: exactly `size` raw bytes follow the line.
    Put {
        kind: String,
        size: u64,
        wait: bool,
    },
    Status(Uuid),
    Result(Uuid),
    /// List up to this many dead tasks.
    Dead(u32),
    Retry(Uuid),
    Cancel(Uuid),
    /// `PAUSE <target>`, or `PAUSE` alone: what is paused.
    Pause(Option<PauseTarget>),
    Resume(PauseTarget),
    Schedule(ScheduleCommand),
    Kinds,
    /// `AUTH <token>`.
    Auth(String),
    /// `TOKEN …` (admin).
    Token(TokenCommand),
    Ping,
    Help,
    Quit,
    /// A worker's request (`WORK`, `DONE`, `FAIL`, `PROGRESS`, `EXTEND`).
    Work(WorkCommand),
}

/// Words that start a command line; a kind with one of these names travels as JSON.
const COMMANDS: &[&str] = &[
    "SUBMIT", "PUT", "STATUS", "RESULT", "RETRY", "CANCEL", "PAUSE", "RESUME", "SCHEDULE", "DEAD",
    "KINDS", "AUTH", "TOKEN", "PING", "HELP", "QUIT", "WORK", "DONE", "FAIL", "PROGRESS", "EXTEND",
    "QUIET",
];

fn malformed(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

fn parse_id(rest: &str, cmd: &str) -> Result<Uuid, ProtocolError> {
    let word = rest.trim();
    if word.is_empty() {
        return Err(malformed(format!("{cmd} needs a task id: {cmd} <id>")));
    }
    Uuid::parse_str(word).map_err(|_| malformed(format!("`{word}` is not a task id (a UUID)")))
}

/// Split `s` at the first run of spaces/tabs: (first word, rest).
pub(crate) fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

impl Request {
    /// The raw bytes that follow this request's line (`PUT`, `DONE <lease> PUT`).
    pub fn body_size(&self) -> Option<u64> {
        match self {
            Request::Put { size, .. } | Request::Work(WorkCommand::DonePut { size, .. }) => {
                Some(*size)
            }
            _ => None,
        }
    }

    /// Parse one request line (without its line ending).
    pub fn parse(line: &[u8]) -> Result<Request, ProtocolError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&0) {
            return Err(ProtocolError::NulByte);
        }
        let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
        if text.trim().is_empty() {
            return Err(ProtocolError::Empty);
        }
        if text.trim_start().starts_with('{') {
            if let Some(done) = WorkCommand::parse_json(text) {
                return done.map(Request::Work);
            }
            return parse_json(text);
        }
        // The payload keeps its own spacing; only the separator after the first word is eaten.
        let (word, rest) = split_word(text.trim_start());
        let command = word.to_ascii_uppercase();
        match command.as_str() {
            "SUBMIT" => {
                let (kind, payload) = split_word(rest);
                if kind.is_empty() {
                    return Err(malformed("SUBMIT needs a kind: SUBMIT <kind> <payload>"));
                }
                Ok(Request::Submit {
                    kind: kind.to_ascii_lowercase(),
                    payload: payload.as_bytes().to_vec(),
                    wait: false,
                    options: SubmitOptions::default(),
                })
            }
            "PUT" => parse_put(rest),
            "STATUS" => Ok(Request::Status(parse_id(rest, "STATUS")?)),
            "RESULT" => Ok(Request::Result(parse_id(rest, "RESULT")?)),
            "RETRY" => Ok(Request::Retry(parse_id(rest, "RETRY")?)),
            "CANCEL" => Ok(Request::Cancel(parse_id(rest, "CANCEL")?)),
            "PAUSE" if rest.trim().is_empty() => Ok(Request::Pause(None)),
            "PAUSE" => Ok(Request::Pause(Some(PauseTarget::parse(rest)?))),
            "RESUME" => Ok(Request::Resume(PauseTarget::parse(rest)?)),
            "SCHEDULE" => Ok(Request::Schedule(ScheduleCommand::parse(rest)?)),
            "AUTH" => match rest.trim() {
                "" => Err(malformed("AUTH needs a token: AUTH <token>")),
                token => Ok(Request::Auth(token.to_string())),
            },
            "TOKEN" => Ok(Request::Token(TokenCommand::parse(rest)?)),
            "DEAD" => {
                let limit = match rest.trim() {
                    "" => DEAD_DEFAULT,
                    n => n
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=DEAD_MAX).contains(n))
                        .ok_or_else(|| {
                            malformed(format!("DEAD takes a limit from 1 to {DEAD_MAX}"))
                        })?,
                };
                Ok(Request::Dead(limit))
            }
            "KINDS" | "PING" | "HELP" | "QUIT" if !rest.trim().is_empty() => {
                Err(malformed(format!("{command} takes no arguments")))
            }
            "KINDS" => Ok(Request::Kinds),
            "WORK" | "DONE" | "FAIL" | "PROGRESS" | "EXTEND" | "QUIET" => {
                WorkCommand::parse(&command, rest)
                    .unwrap_or_else(|| Err(malformed("not a worker's request")))
                    .map(Request::Work)
            }
            "PING" => Ok(Request::Ping),
            "HELP" => Ok(Request::Help),
            "QUIT" => Ok(Request::Quit),
            _ => Ok(Request::Submit {
                kind: word.to_ascii_lowercase(),
                payload: rest.as_bytes().to_vec(),
                wait: true,
                options: SubmitOptions::default(),
            }),
        }
    }

    /// The request as a line (with its newline) that [`Request::parse`] reads back as `self`.
    /// A submission whose payload does not survive the plain form (newlines, binary, leading
    /// blanks) or whose kind looks like a command is written as a JSON object.
    pub fn to_line(&self) -> String {
        let mut line = match self {
            Request::Submit {
                kind,
                payload,
                wait,
                options,
            } => submit_line(kind, payload, *wait, options),
            Request::Put { kind, size, wait } => {
                format!("PUT {kind} {size}{}", if *wait { "" } else { " ASYNC" })
            }
            Request::Status(id) => format!("STATUS {id}"),
            Request::Result(id) => format!("RESULT {id}"),
            Request::Dead(limit) => format!("DEAD {limit}"),
            Request::Retry(id) => format!("RETRY {id}"),
            Request::Cancel(id) => format!("CANCEL {id}"),
            Request::Pause(None) => "PAUSE".into(),
            Request::Pause(Some(target)) => format!("PAUSE {}", target.to_words()),
            Request::Resume(target) => format!("RESUME {}", target.to_words()),
            Request::Schedule(cmd) => format!("SCHEDULE {}", cmd.to_words()),
            Request::Kinds => "KINDS".into(),
            Request::Ping => "PING".into(),
            Request::Auth(token) => format!("AUTH {token}"),
            Request::Token(cmd) => format!("TOKEN {}", cmd.to_words()),
            Request::Help => "HELP".into(),
            Request::Quit => "QUIT".into(),
            Request::Work(cmd) => cmd.to_words(),
        };
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests;
