//! The line protocol spoken on a node's TCP port (and by `taskctl`).
//!
//! One request per line (`\n` or `\r\n`), one JSON object per response line. See [`HELP`].

pub mod codec;

use serde::{Deserialize, Serialize};
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
    "KINDS                     the task kinds this node knows",
    "PING                      liveness check",
    "HELP                      this text",
    "QUIT                      close the connection",
    "{\"kind\":..,\"payload\":..,\"wait\":true}  the same as a JSON object (payload_base64 for binary)",
];

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run `kind` on `payload`; answer with the result (`wait`) or at once with the id.
    Submit {
        kind: String,
        payload: Vec<u8>,
        wait: bool,
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
    Dead(i64),
    Retry(Uuid),
    Kinds,
    Ping,
    Help,
    Quit,
}

/// Why a request line was refused. `code()` is the machine-readable `error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty line: send a command, HELP lists them")]
    Empty,
    #[error("request line is not valid UTF-8 (use PUT for binary payloads)")]
    InvalidUtf8,
    #[error(
        "request line is longer than {limit} bytes; use PUT <kind> <nbytes> for large payloads"
    )]
    LineTooLong { limit: usize },
    #[error("line contains a NUL byte; use PUT <kind> <nbytes> for binary payloads")]
    NulByte,
    #[error("{0}")]
    Malformed(String),
    #[error("declared upload of {size} bytes is over this node's limit of {limit} bytes")]
    PayloadTooLarge { size: u64, limit: u64 },
}

impl ProtocolError {
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::Empty => "empty_line",
            ProtocolError::InvalidUtf8 => "invalid_utf8",
            ProtocolError::LineTooLong { .. } => "line_too_long",
            ProtocolError::NulByte => "nul_byte",
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::PayloadTooLarge { .. } => "payload_too_large",
        }
    }
}

/// The JSON-object form of a submission.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmit {
    kind: String,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

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
fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

/// Parse one request line (without its line ending).
pub fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&0) {
        return Err(ProtocolError::NulByte);
    }
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
    if text.trim().is_empty() {
        return Err(ProtocolError::Empty);
    }
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    // The payload keeps its own spacing; only the separator after the first word is eaten.
    let text = text.trim_start();
    let (word, rest) = split_word(text);
    match word.to_ascii_uppercase().as_str() {
        "SUBMIT" => {
            let (kind, payload) = split_word(rest);
            if kind.is_empty() {
                return Err(malformed("SUBMIT needs a kind: SUBMIT <kind> <payload>"));
            }
            Ok(Request::Submit {
                kind: kind.to_ascii_lowercase(),
                payload: payload.as_bytes().to_vec(),
                wait: false,
            })
        }
        "PUT" => {
            let mut words = rest.split_whitespace();
            let usage = "usage: PUT <kind> <nbytes> [ASYNC], then exactly <nbytes> raw bytes";
            let kind = words.next().ok_or_else(|| malformed(usage))?;
            let size = words
                .next()
                .ok_or_else(|| malformed(usage))?
                .parse::<u64>()
                .map_err(|_| malformed(format!("PUT size must be a whole number; {usage}")))?;
            let wait = match words.next() {
                None => true,
                Some(w) if w.eq_ignore_ascii_case("async") => false,
                Some(w) => return Err(malformed(format!("unexpected `{w}`; {usage}"))),
            };
            if words.next().is_some() {
                return Err(malformed(usage));
            }
            Ok(Request::Put {
                kind: kind.to_ascii_lowercase(),
                size,
                wait,
            })
        }
        "STATUS" => Ok(Request::Status(parse_id(rest, "STATUS")?)),
        "RESULT" => Ok(Request::Result(parse_id(rest, "RESULT")?)),
        "RETRY" => Ok(Request::Retry(parse_id(rest, "RETRY")?)),
        "DEAD" => {
            let limit = match rest.trim() {
                "" => 50,
                n => n
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| malformed("DEAD takes a limit from 1 to 10000"))?,
            };
            Ok(Request::Dead(limit))
        }
        "KINDS" | "PING" | "HELP" | "QUIT" if !rest.trim().is_empty() => Err(malformed(format!(
            "{} takes no arguments",
            word.to_ascii_uppercase()
        ))),
        "KINDS" => Ok(Request::Kinds),
        "PING" => Ok(Request::Ping),
        "HELP" => Ok(Request::Help),
        "QUIT" => Ok(Request::Quit),
        _ => Ok(Request::Submit {
            kind: word.to_ascii_lowercase(),
            payload: rest.as_bytes().to_vec(),
            wait: true,
        }),
    }
}

fn parse_json(text: &str) -> Result<Request, ProtocolError> {
    use base64::Engine;
    let req: JsonSubmit = serde_json::from_str(text).map_err(|e| {
        malformed(format!(
            "bad JSON request ({e}); expected {{\"kind\":\"upper\",\"payload\":\"text\",\"wait\":true}}"
        ))
    })?;
    let payload = match (req.payload, req.payload_base64) {
        (Some(p), None) => p.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| malformed(format!("payload_base64 is not base64: {e}")))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(malformed("give either payload or payload_base64, not both"))
        }
    };
    if req.kind.trim().is_empty() {
        return Err(malformed("kind must not be empty"));
    }
    Ok(Request::Submit {
        kind: req.kind.trim().to_ascii_lowercase(),
        payload,
        wait: req.wait,
    })
}

/// Task states as stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Failed on every allowed attempt; its message is in the dead-letter queue.
    Dead,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "succeeded" => TaskStatus::Succeeded,
            "failed" => TaskStatus::Failed,
            "dead" => TaskStatus::Dead,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Dead
        )
    }
}

/// What a client is told about a task: the JSON object of `STATUS`, `RESULT` and submissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TaskView {
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<TaskStatus>,
    /// The result, when inline: UTF-8 text, or base64 when `result_encoding` says so.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_size: Option<u64>,
    /// Where a large result is kept in the bucket, and a presigned URL to fetch it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// The node that ran the task.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<i32>,
    /// Raw bytes that follow this line (`RESULT` of a large result).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
}

/// An error line: `{"error":"<code>","message":"<what to do>"}`, with the task id when known.
pub fn error_line(
    code: &str,
    message: impl std::fmt::Display,
    id: Option<Uuid>,
) -> serde_json::Value {
    let mut v = serde_json::json!({ "error": code, "message": message.to_string() });
    if let Some(id) = id {
        v["id"] = serde_json::Value::String(id.to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(kind: &str, payload: &str, wait: bool) -> Request {
        Request::Submit {
            kind: kind.into(),
            payload: payload.as_bytes().to_vec(),
            wait,
        }
    }

    #[test]
    fn plain_submission_keeps_payload_spacing() {
        assert_eq!(
            parse_request(b"upper hello  world").unwrap(),
            submit("upper", "hello  world", true)
        );
        assert_eq!(
            parse_request(b"upper hello\r").unwrap(),
            submit("upper", "hello", true)
        );
        assert_eq!(parse_request(b"echo").unwrap(), submit("echo", "", true));
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(parse_request(b"ping").unwrap(), Request::Ping);
        assert_eq!(parse_request(b"KINDS").unwrap(), Request::Kinds);
        assert_eq!(parse_request(b"dead").unwrap(), Request::Dead(50));
        assert_eq!(parse_request(b"DEAD 5").unwrap(), Request::Dead(5));
        assert!(parse_request(b"DEAD 0").is_err());
        assert_eq!(
            parse_request(b"SUBMIT fib 10").unwrap(),
            submit("fib", "10", false)
        );
        let id = Uuid::new_v4();
        assert_eq!(
            parse_request(format!("status {id}").as_bytes()).unwrap(),
            Request::Status(id)
        );
    }

    #[test]
    fn put_header() {
        assert_eq!(
            parse_request(b"PUT sha256 1024").unwrap(),
            Request::Put {
                kind: "sha256".into(),
                size: 1024,
                wait: true
            }
        );
        assert_eq!(
            parse_request(b"put gzip 5 async").unwrap(),
            Request::Put {
                kind: "gzip".into(),
                size: 5,
                wait: false
            }
        );
        assert!(matches!(
            parse_request(b"PUT sha256 lots"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(b"PUT sha256"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn bad_lines_have_codes() {
        assert_eq!(parse_request(b"").unwrap_err().code(), "empty_line");
        assert_eq!(parse_request(b"  \r").unwrap_err().code(), "empty_line");
        assert_eq!(
            parse_request(b"upper \xff\xfe").unwrap_err().code(),
            "invalid_utf8"
        );
        assert_eq!(parse_request(b"upper a\0b").unwrap_err().code(), "nul_byte");
        assert_eq!(
            parse_request(b"STATUS nope").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(parse_request(b"STATUS").unwrap_err().code(), "malformed");
        assert_eq!(parse_request(b"PING now").unwrap_err().code(), "malformed");
        assert_eq!(
            parse_request(b"{\"kind\":1}").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(parse_request(b"{not json").unwrap_err().code(), "malformed");
    }

    #[test]
    fn json_requests() {
        assert_eq!(
            parse_request(br#"{"kind":"upper","payload":"a b"}"#).unwrap(),
            submit("upper", "a b", true)
        );
        assert_eq!(
            parse_request(br#"{"kind":"echo","payload_base64":"AAEC","wait":false}"#).unwrap(),
            Request::Submit {
                kind: "echo".into(),
                payload: vec![0, 1, 2],
                wait: false
            }
        );
        assert!(parse_request(br#"{"kind":"echo","extra":1}"#).is_err());
    }

    #[test]
    fn task_view_skips_absent_fields() {
        let v = TaskView {
            id: Some(Uuid::nil()),
            status: Some(TaskStatus::Queued),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"id":"00000000-0000-0000-0000-000000000000","status":"queued"}"#
        );
    }
}
