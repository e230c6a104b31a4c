//! Managing tokens over the protocol (admin tokens only):
//!
//! - `TOKEN CREATE <name> <role> [max_inflight=N] [rate=PER_SECOND] [max_payload=BYTES]
//!   [max_schedules=N]`
//!   answers [`TokenCreated`], the secret shown this once;
//! - `TOKEN LIST` answers [`TokenList`];
//! - `TOKEN REVOKE <name>` answers [`TokenRevoked`]; every node refuses it within 2 s.

use crate::error::ProtocolError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A `TOKEN` request.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    Create(NewToken),
    List,
    Revoke(String),
}

/// What `TOKEN CREATE` makes (and `POST /v1/tokens` takes).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// `submit`, `read` or `admin`.
    pub role: String,
    /// Most unfinished tasks at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    /// Submissions per second (a token bucket per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Largest payload in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
    /// Most schedules it may have (100 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_schedules: Option<u32>,
}

/// A token as listed (never its secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_schedules: Option<u32>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `TOKEN CREATE`'s answer: the token and its secret, which no one can be shown again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: TokenInfo,
    pub secret: String,
}

/// Every token, revoked ones too.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

impl TokenList {
    /// The header of the table `tasknode token list` and `taskctl token list` print.
    pub const HEADER: &'static str =
        "NAME\tROLE\tMAX_INFLIGHT\tRATE\tMAX_PAYLOAD\tCREATED\tREVOKED";
}

impl TokenInfo {
    /// One line of that table (tab-separated; `-` for none).
    pub fn row(&self) -> String {
        fn or_dash<T: ToString>(v: Option<T>) -> String {
            v.map_or_else(|| "-".to_string(), |v| v.to_string())
        }
        let time = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.name,
            self.role,
            or_dash(self.max_inflight),
            or_dash(self.rate),
            or_dash(self.max_payload),
            time(self.created_at),
            or_dash(self.revoked_at.map(time)),
        )
    }
}

/// A revoked token's name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub revoked: String,
}

const USAGE: &str = "usage: TOKEN CREATE <name> <submit|read|admin|worker> [max_inflight=N] [rate=PER_SECOND] [max_payload=BYTES] [max_schedules=N] | TOKEN LIST | TOKEN REVOKE <name>";

fn malformed(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ProtocolError> {
    value
        .parse()
        .map_err(|_| malformed(format!("{key} takes a number, not `{value}`")))
}

impl TokenCommand {
    /// Parse what follows `TOKEN`.
    pub fn parse(rest: &str) -> Result<TokenCommand, ProtocolError> {
        let mut words = rest.split_whitespace();
        let verb = words.next().unwrap_or_default().to_ascii_uppercase();
        let command = match verb.as_str() {
            "LIST" => TokenCommand::List,
            "REVOKE" => TokenCommand::Revoke(words.next().ok_or_else(|| malformed(USAGE))?.into()),
            "CREATE" => {
                let mut new = NewToken {
                    name: words.next().ok_or_else(|| malformed(USAGE))?.into(),
                    role: words.next().ok_or_else(|| malformed(USAGE))?.into(),
                    ..NewToken::default()
                };
                for option in words.by_ref() {
                    let (key, value) = option.split_once('=').ok_or_else(|| malformed(USAGE))?;
                    match key {
                        "max_inflight" => new.max_inflight = Some(number(key, value)?),
                        "rate" => new.rate = Some(number(key, value)?),
                        "max_payload" => new.max_payload = Some(number(key, value)?),
                        "max_schedules" => new.max_schedules = Some(number(key, value)?),
                        _ => return Err(malformed(format!("no token option `{key}`; {USAGE}"))),
                    }
                }
                TokenCommand::Create(new)
            }
            _ => return Err(malformed(USAGE)),
        };
        match words.next() {
            Some(extra) => Err(malformed(format!("unexpected `{extra}`; {USAGE}"))),
            None => Ok(command),
        }
    }

    /// The request line, without `TOKEN ` and the newline.
    pub fn to_words(&self) -> String {
        match self {
            TokenCommand::List => "LIST".into(),
            TokenCommand::Revoke(name) => format!("REVOKE {name}"),
            TokenCommand::Create(new) => {
                let mut line = format!("CREATE {} {}", new.name, new.role);
                if let Some(n) = new.max_inflight {
                    line.push_str(&format!(" max_inflight={n}"));
                }
                if let Some(r) = new.rate {
                    line.push_str(&format!(" rate={r}"));
                }
                if let Some(b) = new.max_payload {
                    line.push_str(&format!(" max_payload={b}"));
                }
                if let Some(n) = new.max_schedules {
                    line.push_str(&format!(" max_schedules={n}"));
                }
                line
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_commands_read_back_as_written() {
        let create = TokenCommand::Create(NewToken {
            name: "app-1".into(),
            role: "submit".into(),
            max_inflight: Some(10),
            rate: Some(2.5),
            max_payload: Some(1024),
            max_schedules: Some(3),
        });
        for cmd in [
            create,
            TokenCommand::List,
            TokenCommand::Revoke("app-1".into()),
        ] {
            assert_eq!(TokenCommand::parse(&cmd.to_words()).unwrap(), cmd);
        }
        assert_eq!(TokenCommand::parse("list").unwrap(), TokenCommand::List);
    }

    #[test]
    fn bad_token_commands_say_how() {
        for bad in [
            "",
            "CREATE",
            "CREATE app",
            "CREATE app submit rate=fast",
            "CREATE app submit colour=blue",
            "REVOKE",
            "LIST all",
            "DROP app",
        ] {
            let err = TokenCommand::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("TOKEN") || err.contains("number"),
                "{bad}: {err}"
            );
        }
    }
}
