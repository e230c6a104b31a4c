//! One connection to a node, speaking the line protocol.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Conn {
    server: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response line, and the number of raw bytes that follow it (a large `RESULT`), still
/// unread on the connection.
pub struct Reply {
    pub json: Value,
    pub body: Option<u64>,
}

impl Conn {
    /// Connect to one of `servers`: starting at a random one (so many clients spread over
    /// the fleet), then the next, until one accepts.
    pub fn connect_any(servers: &[String]) -> Result<Conn> {
        Self::connect_from(servers, spread_start(servers.len()))
    }

    /// Connect to the first of `servers` that accepts, trying from index `start` on.
    pub fn connect_from(servers: &[String], start: usize) -> Result<Conn> {
        let mut errors = Vec::new();
        for server in rotation(servers, start) {
            match Self::connect(server) {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(format!("{server}: {e:#}")),
            }
        }
        bail!("no node reachable ({})", errors.join("; "))
    }

    fn connect(server: &str) -> Result<Conn> {
        let mut last = None;
        for addr in server
            .to_socket_addrs()
            .with_context(|| format!("bad address `{server}`"))?
        {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    return Ok(Conn {
                        server: server.to_string(),
                        reader: BufReader::new(stream.try_clone()?),
                        writer: stream,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(Into::into)
            .unwrap_or_else(|| anyhow!("no address")))
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn read_reply(&mut self) -> Result<Reply> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .with_context(|| format!("reading from {}", self.server))?;
        if n == 0 {
            bail!("{} closed the connection", self.server);
        }
        let json: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} sent a line that is not JSON: {line:?}", self.server))?;
        let body = json.get("bytes").and_then(Value::as_u64);
        Ok(Reply { json, body })
    }

    /// Send one request line, read one response.
    pub fn call(&mut self, line: &str) -> Result<Reply> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("writing to {}", self.server))?;
        self.read_reply()
    }

    /// Submit with a JSON request line (any payload text, newlines included).
    pub fn submit(&mut self, kind: &str, payload: &[u8], wait: bool) -> Result<Reply> {
        let request = match std::str::from_utf8(payload) {
            Ok(text) => serde_json::json!({"kind": kind, "payload": text, "wait": wait}),
            Err(_) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
                serde_json::json!({"kind": kind, "payload_base64": b64, "wait": wait})
            }
        };
        self.call(&request.to_string())
    }

    /// Submit a file with `PUT <kind> <nbytes>`, streaming it.
    pub fn put_file(&mut self, kind: &str, path: &Path, wait: bool) -> Result<Reply> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        let header = format!("PUT {kind} {size}{}\n", if wait { "" } else { " ASYNC" });
        self.writer.write_all(header.as_bytes())?;
        let copied = std::io::copy(&mut (&mut file).take(size), &mut self.writer)
            .with_context(|| format!("sending {} to {}", path.display(), self.server))?;
        if copied != size {
            bail!("{} shrank while being sent", path.display());
        }
        self.read_reply()
    }

    /// Copy the `n` raw bytes following the last reply into `out`.
    pub fn copy_body(&mut self, n: u64, out: &mut dyn Write) -> Result<()> {
        let copied = std::io::copy(&mut (&mut self.reader).take(n), out)?;
        if copied != n {
            bail!(
                "{} ended the result after {copied} of {n} bytes",
                self.server
            );
        }
        Ok(())
    }
}

/// Each of `servers` once, starting at index `start` (modulo their number).
pub fn rotation(servers: &[String], start: usize) -> impl Iterator<Item = &String> {
    let n = servers.len().max(1);
    servers.iter().cycle().skip(start % n).take(servers.len())
}

/// A starting index that differs between processes and calls.
fn spread_start(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    (nanos ^ std::process::id() as usize) % n
}
