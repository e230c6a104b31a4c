//! The submission forms: `PUT`'s header, the JSON object, and which form a client writes.

use super::{malformed, Request, COMMANDS};
use crate::control::SubmitOptions;
use crate::error::ProtocolError;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
}

fn yes() -> bool {
    true
}

pub(super) fn parse_put(rest: &str) -> Result<Request, ProtocolError> {
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

pub(super) fn parse_json(text: &str) -> Result<Request, ProtocolError> {
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
    let options = SubmitOptions {
        key: req.key,
        delay_ms: req.delay_ms,
        run_at: req.run_at,
        priority: req.priority,
    }
    .checked()?;
    Ok(Request::Submit {
        kind: req.kind.trim().to_ascii_lowercase(),
        payload,
        wait: req.wait,
        options,
    })
}

/// Whether `kind payload` (or `SUBMIT kind payload`) parses back unchanged.
pub(super) fn plain_form_fits(kind: &str, payload: &[u8]) -> bool {
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

pub(super) fn submit_line(
    kind: &str,
    payload: &[u8],
    wait: bool,
    options: &SubmitOptions,
) -> String {
    if options.is_plain() && plain_form_fits(kind, payload) {
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
        key: options.key.clone(),
        delay_ms: options.delay_ms,
        run_at: options.run_at,
        priority: options.priority,
    };
    serde_json::to_string(&json).expect("a submission serializes")
}
