//! Logging through `tracing`; `RUST_LOG` picks the level (default `info`). actix-http's
//! dispatcher is quiet by default: it logs every malformed request a client sends as an
//! error (the client gets its 400; the node's log is not theirs to fill).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,lapin=warn,amq_protocol=warn,actix_http::h1::dispatcher=off")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
