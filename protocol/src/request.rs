//! Requests: one line each. [`Request::parse`] reads a line as a node does; [`Request::to_line`]
//! writes one that parses back to the same request (a client's side).

use crate::error::ProtocolError;
use base64::Engine;
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
    "AUTH <token>              who you are; needed before anything but PING, HELP and QUIT",
    "PING                      whether this node and its dependencies answer",
    "HELP                      this text",
    "QUIT                      close the connection",
    "{\"kind\":..,\"payload\":..,\"wait\":true}  the same as a JSON object (payload_base64 for binary)",
];

/// `DEAD` without a limit lists this many.
pub const DEAD_DEFAULT: u32 = 50;
/// The largest `DEAD` limit.
pub const DEAD_MAX: u32 = 10_000;

/// A request line.
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
    Dead(u32),
    Retry(Uuid),
    Kinds,
    /// `AUTH <token>`.
    Auth(String),
    Ping,
    Help,
    Quit,
}

/// Words that start a command line; a kind with one of these names travels as JSON.
const COMMANDS: &[&str] = &[
    "SUBMIT", "PUT", "STATUS", "RESULT", "RETRY", "DEAD", "KINDS", "AUTH", "PING", "HELP", "QUIT",
];

/// The JSON-object form of a submission.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmit {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl Request {
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
                })
            }
            "PUT" => parse_put(rest),
            "STATUS" => Ok(Request::Status(parse_id(rest, "STATUS")?)),
            "RESULT" => Ok(Request::Result(parse_id(rest, "RESULT")?)),
            "RETRY" => Ok(Request::Retry(parse_id(rest, "RETRY")?)),
            "AUTH" => match rest.trim() {
                "" => Err(malformed("AUTH needs a token: AUTH <token>")),
                token => Ok(Request::Auth(token.to_string())),
            },
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

    /// The request as a line (with its newline) that [`Request::parse`] reads back as `self`.
    /// A submission whose payload does not survive the plain form (newlines, binary, leading
    /// blanks) or whose kind looks like a command is written as a JSON object.
    pub fn to_line(&self) -> String {
        let mut line = match self {
            Request::Submit {
                kind,
                payload,
                wait,
            } => submit_line(kind, payload, *wait),
            Request::Put { kind, size, wait } => {
                format!("PUT {kind} {size}{}", if *wait { "" } else { " ASYNC" })
            }
            Request::Status(id) => format!("STATUS {id}"),
            Request::Result(id) => format!("RESULT {id}"),
            Request::Dead(limit) => format!("DEAD {limit}"),
            Request::Retry(id) => format!("RETRY {id}"),
            Request::Kinds => "KINDS".into(),
            Request::Ping => "PING".into(),
            Request::Auth(token) => format!("AUTH {token}"),
            Request::Help => "HELP".into(),
            Request::Quit => "QUIT".into(),
        };
        line.push('\n');
        line
    }
}

fn parse_put(rest: &str) -> Result<Request, ProtocolError> {
    let usage = "usage: PUT <kind> <nbytes> [ASYNC], then exactly <nbytes> raw bytes";
    let mut words = rest.split_whitespace();
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

fn parse_json(text: &str) -> Result<Request, ProtocolError> {
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

/// Whether `kind payload` (or `SUBMIT kind payload`) parses back unchanged.
fn plain_form_fits(kind: &str, payload: &[u8]) -> bool {
    let kind_ok = !kind.is_empty()
        && !kind.starts_with('{')
        && !kind.contains(|c: char| c.is_whitespace() || c.is_ascii_uppercase() || c == '\0')
        && !COMMANDS.contains(&kind.to_ascii_uppercase().as_str());
    let payload_ok = match std::str::from_utf8(payload) {
        Ok(text) => !text.contains(['\n', '\r', '\0']) && !text.starts_with([' ', '\t']),
        Err(_) => false,
    };
    kind_ok && payload_ok
}

fn submit_line(kind: &str, payload: &[u8], wait: bool) -> String {
    if plain_form_fits(kind, payload) {
        let text = std::str::from_utf8(payload).unwrap_or_default();
        let sep = if text.is_empty() { "" } else { " " };
        return match wait {
            true => format!("{kind}{sep}{text}"),
            false => format!("SUBMIT {kind}{sep}{text}"),
        };
    }
    let (payload, payload_base64) = match std::str::from_utf8(payload) {
        Ok(text) if !text.contains('\0') => (Some(text.to_string()), None),
        _ => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(payload)),
        ),
    };
    let json = JsonSubmit {
        kind: kind.to_string(),
        payload,
        payload_base64,
        wait,
    };
    serde_json::to_string(&json).expect("a submission serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn submit(kind: &str, payload: &str, wait: bool) -> Request {
        Request::Submit {
            kind: kind.into(),
            payload: payload.as_bytes().to_vec(),
            wait,
        }
    }

    fn parse(line: &[u8]) -> Result<Request, ProtocolError> {
        Request::parse(line)
    }

    #[test]
    fn plain_submission_keeps_payload_spacing() {
        assert_eq!(
            parse(b"upper hello  world").unwrap(),
            submit("upper", "hello  world", true)
        );
        assert_eq!(
            parse(b"upper hello\r").unwrap(),
            submit("upper", "hello", true)
        );
        assert_eq!(parse(b"echo").unwrap(), submit("echo", "", true));
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(parse(b"ping").unwrap(), Request::Ping);
        assert_eq!(parse(b"KINDS").unwrap(), Request::Kinds);
        assert_eq!(parse(b"dead").unwrap(), Request::Dead(DEAD_DEFAULT));
        assert_eq!(parse(b"DEAD 5").unwrap(), Request::Dead(5));
        assert!(parse(b"DEAD 0").is_err());
        assert_eq!(parse(b"SUBMIT fib 10").unwrap(), submit("fib", "10", false));
        let id = Uuid::new_v4();
        assert_eq!(
            parse(format!("status {id}").as_bytes()).unwrap(),
            Request::Status(id)
        );
    }

    #[test]
    fn put_header() {
        let put = |kind: &str, size, wait| Request::Put {
            kind: kind.into(),
            size,
            wait,
        };
        assert_eq!(
            parse(b"PUT sha256 1024").unwrap(),
            put("sha256", 1024, true)
        );
        assert_eq!(parse(b"put gzip 5 async").unwrap(), put("gzip", 5, false));
        assert!(matches!(
            parse(b"PUT sha256 lots"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"PUT sha256"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn bad_lines_have_codes() {
        use crate::ErrorCode::*;
        let code = |line: &[u8]| parse(line).unwrap_err().code();
        assert_eq!(code(b""), EmptyLine);
        assert_eq!(code(b"  \r"), EmptyLine);
        assert_eq!(code(b"upper \xff\xfe"), InvalidUtf8);
        assert_eq!(code(b"upper a\0b"), NulByte);
        assert_eq!(code(b"STATUS nope"), Malformed);
        assert_eq!(code(b"STATUS"), Malformed);
        assert_eq!(code(b"PING now"), Malformed);
        assert_eq!(code(b"{\"kind\":1}"), Malformed);
        assert_eq!(code(b"{not json"), Malformed);
    }

    #[test]
    fn json_requests() {
        assert_eq!(
            parse(br#"{"kind":"upper","payload":"a b"}"#).unwrap(),
            submit("upper", "a b", true)
        );
        assert_eq!(
            parse(br#"{"kind":"echo","payload_base64":"AAEC","wait":false}"#).unwrap(),
            Request::Submit {
                kind: "echo".into(),
                payload: vec![0, 1, 2],
                wait: false
            }
        );
        assert!(parse(br#"{"kind":"echo","extra":1}"#).is_err());
    }

    #[test]
    fn lines_take_the_plain_form_when_it_fits() {
        assert_eq!(submit("upper", "a b", true).to_line(), "upper a b\n");
        assert_eq!(submit("fib", "10", false).to_line(), "SUBMIT fib 10\n");
        assert_eq!(submit("echo", "", true).to_line(), "echo\n");
        assert!(submit("echo", "a\nb", true).to_line().starts_with('{'));
        assert!(submit("ping", "x", true).to_line().starts_with('{'));
        assert_eq!(Request::Dead(7).to_line(), "DEAD 7\n");
    }

    fn request() -> impl Strategy<Value = Request> {
        let kind = "[a-z][a-z0-9_]{0,11}";
        let id = any::<u128>().prop_map(Uuid::from_u128);
        prop_oneof![
            (
                kind,
                proptest::collection::vec(any::<u8>(), 0..64),
                any::<bool>()
            )
                .prop_map(|(kind, payload, wait)| Request::Submit {
                    kind,
                    payload,
                    wait
                }),
            (kind, ".{0,40}", any::<bool>()).prop_map(|(kind, text, wait)| Request::Submit {
                kind,
                payload: text.into_bytes(),
                wait
            }),
            (kind, any::<u64>(), any::<bool>()).prop_map(|(kind, size, wait)| Request::Put {
                kind,
                size,
                wait
            }),
            id.clone().prop_map(Request::Status),
            id.clone().prop_map(Request::Result),
            id.prop_map(Request::Retry),
            (1..=DEAD_MAX).prop_map(Request::Dead),
            Just(Request::Kinds),
            "tn_[A-Za-z0-9_-]{1,43}".prop_map(Request::Auth),
            Just(Request::Ping),
            Just(Request::Help),
            Just(Request::Quit),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn to_line_parses_back(req in request()) {
            let line = req.to_line();
            prop_assert!(line.ends_with('\n'));
            prop_assert_eq!(line.matches('\n').count(), 1, "one line: {:?}", line);
            let parsed = Request::parse(line.trim_end_matches('\n').as_bytes());
            prop_assert_eq!(parsed, Ok(req));
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::parse(&line);
        }
    }
}
