//! Who may use a node: tokens ([`tokens`]), the identity a connection has after `AUTH`, and
//! what each role may do.
//!
//! - `submit`: submits tasks and reads its own;
//! - `read`: reads its own tasks;
//! - `worker`: runs tasks of external kinds (`WORK`, `DONE`, ...), sees no task otherwise;
//! - `admin`: sees and acts on every task, manages tokens, and may work too.
//!
//! A task records the token (by name) that submitted it; another owner's task is answered
//! exactly as an unknown id, so nothing leaks whether it exists. A node in `auth.mode = "open"`
//! serves everyone as an admin with no name (its tasks have no owner).

pub mod backoff;
pub mod tokens;
mod unknown;

use serde::{Deserialize, Serialize};

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Submit,
    Read,
    Admin,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::Read => "read",
            Role::Admin => "admin",
            Role::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "submit" => Some(Role::Submit),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// How a node lets clients in (`[auth] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `AUTH <token>` first (the default).
    Token,
    /// Everyone is an admin. Only on loopback unless `allow_open_network`.
    Open,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: Mode,
    /// Let an open node listen on a non-loopback address (anyone who reaches it may do
    /// anything).
    pub allow_open_network: bool,
}

impl AuthSettings {
    /// Refuse an open node on a non-loopback address unless allowed (then warn loudly).
    pub fn check(&self, address: &std::net::SocketAddr) -> Result<(), String> {
        if self.mode != Mode::Open || address.ip().is_loopback() {
            return Ok(());
        }
        if !self.allow_open_network {
            return Err(format!(
                "auth.mode = \"open\" on {address}, which is not a loopback address: anyone who reaches it could do anything. Use tokens (auth.mode = \"token\"), listen on 127.0.0.1, or set auth.allow_open_network = true"
            ));
        }
        tracing::warn!(%address, "OPEN NODE ON THE NETWORK: no tokens are asked; anyone who reaches this address may submit, read and retry any task (auth.allow_open_network = true)");
        Ok(())
    }
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The token's name; `None` on an open node.
    pub name: Option<String>,
    pub role: Role,
    pub limits: tokens::Limits,
}

impl Identity {
    /// Everyone, on an open node.
    pub fn open() -> Identity {
        Identity {
            name: None,
            role: Role::Admin,
            limits: tokens::Limits::default(),
        }
    }

    /// What the tasks this identity submits record as their owner.
    pub fn owner(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether this identity may see a task owned by `owner`.
    pub fn sees(&self, owner: Option<&str>) -> bool {
        self.role == Role::Admin || (self.name.is_some() && self.name.as_deref() == owner)
    }

    pub fn may_submit(&self) -> bool {
        matches!(self.role, Role::Submit | Role::Admin)
    }

    /// Whether this identity may take tasks as a worker (`WORK`, `DONE`, ...).
    pub fn may_work(&self) -> bool {
        matches!(self.role, Role::Worker | Role::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, role: Role) -> Identity {
        Identity {
            name: Some(name.into()),
            role,
            limits: Default::default(),
        }
    }

    #[test]
    fn owners_see_their_own_tasks_and_admins_see_all() {
        assert!(who("a", Role::Submit).sees(Some("a")));
        assert!(!who("a", Role::Submit).sees(Some("b")));
        assert!(!who("a", Role::Read).sees(None));
        assert!(who("root", Role::Admin).sees(Some("b")));
        assert!(Identity::open().sees(None));
        assert!(!who("r", Role::Read).may_submit());
        assert!(who("s", Role::Submit).may_submit());
        assert!(!who("w", Role::Worker).may_submit() && who("w", Role::Worker).may_work());
        assert!(!who("s", Role::Submit).may_work() && who("a", Role::Admin).may_work());
    }
}
