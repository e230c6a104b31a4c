//! The checks of [`Settings`] that serde cannot express: each names its key.

use super::{ConfigError, Settings};

impl Settings {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        let name = &self.node.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "node.name",
                "must be non-empty and use only letters, digits, '-', '_' or '.'",
            ));
        }
        if self
            .listener
            .address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(invalid(
                "listener.address",
                format!("`{}` is not an IP:port address", self.listener.address),
            ));
        }
        if self.listener.max_line_bytes < 64 {
            return Err(invalid("listener.max_line_bytes", "must be at least 64"));
        }
        if self.listener.max_connections == 0 {
            return Err(invalid("listener.max_connections", "must be at least 1"));
        }
        if self.listener.wait_timeout_secs == 0 {
            return Err(invalid("listener.wait_timeout_secs", "must be at least 1"));
        }
        for url in self.amqp.urls() {
            if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
                let key = if self.amqp.urls.is_empty() {
                    "amqp.url"
                } else {
                    "amqp.urls"
                };
                return Err(invalid(
                    key,
                    format!(
                        "`{}` must start with amqp:// or amqps://",
                        crate::telemetry::redact(&url)
                    ),
                ));
            }
        }
        if self.amqp.task_queue.is_empty() {
            return Err(invalid("amqp.task_queue", "must not be empty"));
        }
        if self.amqp.publish_wait_ms > 60_000 {
            return Err(invalid("amqp.publish_wait_ms", "must be at most 60000"));
        }
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if !self.storage.endpoint.starts_with("http://")
            && !self.storage.endpoint.starts_with("https://")
        {
            return Err(invalid(
                "storage.endpoint",
                "must start with http:// or https://",
            ));
        }
        if self.storage.bucket.is_empty() {
            return Err(invalid("storage.bucket", "must not be empty"));
        }
        if self.storage.part_size < 5 * 1024 * 1024 {
            return Err(invalid(
                "storage.part_size",
                "must be at least 5242880 (5 MiB, the S3 minimum)",
            ));
        }
        if self.storage.inline_limit > 16 * 1024 * 1024 {
            return Err(invalid("storage.inline_limit", "must be at most 16 MiB"));
        }
        if self.listener.idle_timeout_secs == 0 {
            return Err(invalid("listener.idle_timeout_secs", "must be at least 1"));
        }
        if self.listener.auth_timeout_secs == 0 {
            return Err(invalid("listener.auth_timeout_secs", "must be at least 1"));
        }
        if self.listener.write_timeout_secs == 0 {
            return Err(invalid("listener.write_timeout_secs", "must be at least 1"));
        }
        if self.listener.tls_cert.is_some() != self.listener.tls_key.is_some() {
            return Err(invalid(
                "listener.tls_cert",
                "TLS needs both listener.tls_cert and listener.tls_key",
            ));
        }
        if self.storage.max_uploads == 0 {
            return Err(invalid("storage.max_uploads", "must be at least 1"));
        }
        if self.storage.timeout_secs == 0 {
            return Err(invalid("storage.timeout_secs", "must be at least 1"));
        }
        if self.tasks.max_attempts == 0 || self.tasks.max_attempts > 50 {
            return Err(invalid("tasks.max_attempts", "must be from 1 to 50"));
        }
        if self.tasks.retry_base_ms == 0 {
            return Err(invalid("tasks.retry_base_ms", "must be at least 1"));
        }
        // RabbitMQ closes a channel holding a delivery unacked past its consumer_timeout.
        if self.tasks.timeout_secs == 0 || self.tasks.timeout_secs > 1500 {
            return Err(invalid(
                "tasks.timeout_secs",
                "must be from 1 to 1500 (below RabbitMQ's 30-minute consumer timeout)",
            ));
        }
        for (kind, k) in &self.tasks.kinds {
            if k.max_attempts.is_some_and(|n| n == 0 || n > 50) {
                return Err(ConfigError::Invalid {
                    key: "tasks.kinds.<kind>.max_attempts",
                    problem: format!("`{kind}`: must be from 1 to 50"),
                });
            }
            if k.timeout_secs.is_some_and(|n| n == 0 || n > 1500) {
                return Err(ConfigError::Invalid {
                    key: "tasks.kinds.<kind>.timeout_secs",
                    problem: format!("`{kind}`: must be from 1 to 1500"),
                });
            }
        }
        // A key must not outlive the row it names (its day is dropped after retention.days).
        if self.retention.days > 0 && self.keys.retention_secs > self.retention.days * 86_400 {
            return Err(invalid(
                "keys.retention_secs",
                format!(
                    "{} s is longer than retention.days ({} days): a key would name a task already removed",
                    self.keys.retention_secs, self.retention.days
                ),
            ));
        }
        if self.janitor.every_secs == 0 {
            return Err(invalid("janitor.every_secs", "must be at least 1"));
        }
        if self.supervision.max_restarts == 0 {
            return Err(invalid("supervision.max_restarts", "must be at least 1"));
        }
        if self.supervision.window_secs == 0 {
            return Err(invalid("supervision.window_secs", "must be at least 1"));
        }
        Ok(())
    }
}
