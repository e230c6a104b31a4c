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

/// `url` with its passwords replaced by `***`, for logs and error messages: the one in its
/// user info (`scheme://user:secret@host`), and any `password=` parameter (a query string's,
/// `?password=secret`, or a key=value connection string's, `password='a secret'`).
pub fn redact(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    mask_passwords(&url)
}

/// Every `password=` value in `text` (to the next `&`, `;` or blank, or a quoted one whole)
/// replaced by `***`.
fn mask_passwords(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(KEY) {
        let value = at + found + KEY.len();
        let rest = &text[value..];
        let len = match rest.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(rest.len(), |q| q + 2),
            None => rest
                .find(|c: char| c == '&' || c == ';' || c.is_whitespace())
                .unwrap_or(rest.len()),
        };
        out.push_str(&text[at..value]);
        out.push_str("***");
        at = value + len;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        for (given, shown) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            (
                "postgres://postgres@127.0.0.1/db",
                "postgres://postgres@127.0.0.1/db",
            ),
            (
                "postgres://u@h/db?sslmode=require&password=hunter2&x=1",
                "postgres://u@h/db?sslmode=require&password=***&x=1",
            ),
            (
                "host=db user=u PASSWORD='a secret' dbname=t",
                "host=db user=u PASSWORD=*** dbname=t",
            ),
            ("password=", "password=***"),
        ] {
            assert_eq!(super::redact(given), shown, "{given}");
        }
    }
}
