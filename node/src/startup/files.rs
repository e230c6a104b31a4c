//! Open files: every connection a node serves is a file descriptor. At start the node raises
//! its soft `RLIMIT_NOFILE` (up to the hard limit) to fit its configured bounds, or refuses to
//! start naming them, so that the bounds, not the process limit, decide when a client gets
//! `busy`.

use crate::config::Settings;

/// Descriptors beyond the client connections: the database pool, the broker connections, the
/// bucket's HTTP client, spill files, the listening sockets.
const RESERVE: u64 = 256;

/// The descriptors a node with `settings` may need at once.
pub fn needed(settings: &Settings) -> u64 {
    settings.listener.max_connections as u64
        + settings.http.max_connections as u64
        + u64::from(settings.database.pool_size)
        + RESERVE
}

/// Raise the soft limit on open files to fit `settings`; `Err` names what does not fit.
pub fn fit(settings: &Settings) -> Result<(), String> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let need = needed(settings);
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= need) {
        return Ok(());
    }
    let raised = limit.maximum.map_or(need, |hard| hard.min(need));
    limit.current = Some(raised);
    let set = setrlimit(Resource::Nofile, limit);
    let now = getrlimit(Resource::Nofile).current;
    if set.is_ok() && now.is_none_or(|soft| soft >= need) {
        tracing::info!(
            open_files = raised,
            "raised the limit on open files to fit the connection bounds"
        );
        return Ok(());
    }
    Err(format!(
        "listener.max_connections ({}) + http.max_connections ({}) + database.pool_size ({}) + {RESERVE} need {need} open files, but this process may have at most {} (RLIMIT_NOFILE, hard: {}): lower the bounds or raise the limit (LimitNOFILE= in systemd, ulimit -n)",
        settings.listener.max_connections,
        settings.http.max_connections,
        settings.database.pool_size,
        now.map_or("unlimited".into(), |n| n.to_string()),
        limit.maximum.map_or("unlimited".into(), |n| n.to_string()),
    ))
}
