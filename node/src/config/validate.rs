//! The checks of [`Settings`] that serde cannot express, one function per section: each
//! error names its key.

use super::{ConfigError, Settings};

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// `value` must be at least `min`.
fn at_least(key: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    match value >= min {
        true => Ok(()),
        false => Err(invalid(key, format!("must be at least {min}"))),
    }
}

/// `value` must start with one of `schemes`.
fn scheme(key: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    match schemes.iter().any(|s| value.starts_with(s)) {
        true => Ok(()),
        false => Err(invalid(
            key,
            format!("must start with {}", schemes.join(" or ")),
        )),
    }
}

impl Settings {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_listener()?;
        self.validate_amqp()?;
        self.validate_database()?;
        self.validate_storage()?;
        self.validate_tasks()?;
        self.validate_external()?;
        self.validate_upkeep()
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let name = &self.node.name;
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
        if name.is_empty() || !name.chars().all(allowed) {
            return Err(invalid(
                "node.name",
                "must be non-empty and use only letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(())
    }

    fn validate_listener(&self) -> Result<(), ConfigError> {
        let l = &self.listener;
        if l.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "listener.address",
                format!("`{}` is not an IP:port address", l.address),
            ));
        }
        at_least("listener.max_line_bytes", l.max_line_bytes as u64, 64)?;
        at_least("listener.max_connections", l.max_connections as u64, 1)?;
        at_least("listener.wait_timeout_secs", l.wait_timeout_secs, 1)?;
        at_least("listener.idle_timeout_secs", l.idle_timeout_secs, 1)?;
        at_least("listener.auth_timeout_secs", l.auth_timeout_secs, 1)?;
        at_least("listener.write_timeout_secs", l.write_timeout_secs, 1)?;
        if l.tls_cert.is_some() != l.tls_key.is_some() {
            return Err(invalid(
                "listener.tls_cert",
                "TLS needs both listener.tls_cert and listener.tls_key",
            ));
        }
        Ok(())
    }

    fn validate_amqp(&self) -> Result<(), ConfigError> {
        for url in self.amqp.urls() {
            if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
                let key = match self.amqp.urls.is_empty() {
                    true => "amqp.url",
                    false => "amqp.urls",
                };
                let url = crate::telemetry::redact(&url);
                return Err(invalid(
                    key,
                    format!("`{url}` must start with amqp:// or amqps://"),
                ));
            }
        }
        if self.amqp.task_queue.is_empty() {
            return Err(invalid("amqp.task_queue", "must not be empty"));
        }
        if self.amqp.publish_wait_ms > 60_000 {
            return Err(invalid("amqp.publish_wait_ms", "must be at most 60000"));
        }
        Ok(())
    }

    fn validate_database(&self) -> Result<(), ConfigError> {
        let schemes = ["postgres://", "postgresql://"];
        scheme("database.url", &self.database.url, &schemes)?;
        at_least("database.pool_size", self.database.pool_size.into(), 1)
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let s = &self.storage;
        scheme("storage.endpoint", &s.endpoint, &["http://", "https://"])?;
        if s.bucket.is_empty() {
            return Err(invalid("storage.bucket", "must not be empty"));
        }
        if s.part_size < 5 * 1024 * 1024 {
            return Err(invalid(
                "storage.part_size",
                "must be at least 5242880 (5 MiB, the S3 minimum)",
            ));
        }
        if s.inline_limit > 16 * 1024 * 1024 {
            return Err(invalid("storage.inline_limit", "must be at most 16 MiB"));
        }
        at_least("storage.max_uploads", s.max_uploads as u64, 1)?;
        at_least("storage.timeout_secs", s.timeout_secs, 1)
    }

    fn validate_tasks(&self) -> Result<(), ConfigError> {
        let t = &self.tasks;
        if t.max_attempts == 0 || t.max_attempts > 50 {
            return Err(invalid("tasks.max_attempts", "must be from 1 to 50"));
        }
        at_least("tasks.retry_base_ms", t.retry_base_ms, 1)?;
        // RabbitMQ closes a channel holding a delivery unacked past its consumer_timeout.
        if t.timeout_secs == 0 || t.timeout_secs > 1500 {
            return Err(invalid(
                "tasks.timeout_secs",
                "must be from 1 to 1500 (below RabbitMQ's 30-minute consumer timeout)",
            ));
        }
        for (kind, k) in &t.kinds {
            if k.max_attempts.is_some_and(|n| n == 0 || n > 50) {
                let problem = format!("`{kind}`: must be from 1 to 50");
                return Err(invalid("tasks.kinds.<kind>.max_attempts", problem));
            }
            if k.timeout_secs.is_some_and(|n| n == 0 || n > 1500) {
                let problem = format!("`{kind}`: must be from 1 to 1500");
                return Err(invalid("tasks.kinds.<kind>.timeout_secs", problem));
            }
            let longest = self.amqp.consumer_timeout_secs.saturating_sub(60);
            if k.max_secs.is_some_and(|n| n == 0 || n > longest) {
                let problem = format!("`{kind}`: must be from 1 to {longest} (amqp.consumer_timeout_secs less a minute)");
                return Err(invalid("tasks.kinds.<kind>.max_secs", problem));
            }
        }
        Ok(())
    }

    fn validate_external(&self) -> Result<(), ConfigError> {
        let e = &self.external;
        if let Some(bad) = e.kinds.iter().find(|k| !protocol::work::valid_kind_name(k)) {
            let problem =
                format!("`{bad}` is not a kind name (lowercase letters, digits, `_`, `-`, `.`)");
            return Err(invalid("external.kinds", problem));
        }
        if self.http.work_wait_secs > 30 {
            return Err(invalid("http.work_wait_secs", "is at most 30"));
        }
        at_least(
            "external.registration_ttl_secs",
            e.registration_ttl_secs,
            60,
        )
    }

    /// Keys, retention, the janitor and supervision.
    fn validate_upkeep(&self) -> Result<(), ConfigError> {
        // A key must not outlive the row it names (its day is dropped after retention.days).
        let days = self.retention.days;
        if days > 0 && self.keys.retention_secs > days * 86_400 {
            return Err(invalid(
                "keys.retention_secs",
                format!(
                    "{} s is longer than retention.days ({days} days): a key would name a task already removed",
                    self.keys.retention_secs
                ),
            ));
        }
        at_least("janitor.every_secs", self.janitor.every_secs, 1)?;
        at_least(
            "supervision.max_restarts",
            self.supervision.max_restarts.into(),
            1,
        )?;
        at_least("supervision.window_secs", self.supervision.window_secs, 1)
    }
}
