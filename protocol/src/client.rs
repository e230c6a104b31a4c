//! A typed async client for one node connection: `taskctl`, the benchmark and the tests all
//! speak the protocol through it.
//!
//! Each call writes a [`Request`] and reads its answer as the type that request answers with;
//! an error line comes back as [`ClientError::Refused`]. A task that failed is not a refusal:
//! it is a [`TaskView`] whose status says so. [`Client::into_split`] gives the two halves for
//! pipelining (many requests out, answers back in order).

use crate::control::SubmitOptions;
use crate::error::{ErrorCode, ErrorLine};
use crate::request::Request;
use crate::token::{NewToken, TokenCommand, TokenCreated, TokenList, TokenRevoked};
use crate::transport::{BoxRead, BoxWrite, Transport};
use crate::view::{AuthOk, Bye, DeadList, HelpText, KindList, Pong, TaskView};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error line.
    #[error("{0}")]
    Refused(ErrorLine),
    #[error("no node reachable ({0})")]
    Unreachable(String),
    #[error("{server}: {source}")]
    Io {
        server: String,
        source: std::io::Error,
    },
    #[error("{0} closed the connection")]
    Closed(String),
    #[error("{server} sent an answer this client cannot read ({reason}): {line}")]
    BadAnswer {
        server: String,
        reason: String,
        line: String,
    },
}

/// The reading half: answer lines, and the raw bytes that follow a `"bytes":N` header.
pub struct Answers {
    server: String,
    reader: BufReader<BoxRead>,
    line: Vec<u8>,
}

/// The writing half: request lines and upload bodies.
pub struct Requests {
    server: String,
    writer: BoxWrite,
}

/// One connection to a node.
pub struct Client {
    answers: Answers,
    requests: Requests,
}

/// Each of `servers` once, starting at index `start` (modulo their number).
pub fn rotation(servers: &[String], start: usize) -> impl Iterator<Item = &String> {
    let n = servers.len().max(1);
    servers.iter().cycle().skip(start % n).take(servers.len())
}

fn io_error(server: &str) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        server: server.to_string(),
        source,
    }
}

impl Client {
    /// Connect to `server` (`host:port`) over plain TCP.
    pub async fn connect(server: &str) -> Result<Client, ClientError> {
        Client::connect_via(server, &Transport::plain()).await
    }

    /// Connect to `server` (`host:port`) over `transport`.
    pub async fn connect_via(server: &str, transport: &Transport) -> Result<Client, ClientError> {
        let (read, writer) = transport.open(server).await.map_err(io_error(server))?;
        Ok(Client {
            answers: Answers {
                server: server.to_string(),
                reader: BufReader::new(read),
                line: Vec::with_capacity(256),
            },
            requests: Requests {
                server: server.to_string(),
                writer,
            },
        })
    }

    /// Connect to the first of `servers` that accepts, trying from index `start` on.
    pub async fn connect_any(
        servers: &[String],
        start: usize,
        transport: &Transport,
    ) -> Result<Client, ClientError> {
        let mut errors = Vec::new();
        for server in rotation(servers, start) {
            match Client::connect_via(server, transport).await {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ClientError::Unreachable(errors.join("; ")))
    }

    pub fn server(&self) -> &str {
        &self.requests.server
    }

    /// The two halves, to send requests while answers are read (pipelining).
    pub fn into_split(self) -> (Answers, Requests) {
        (self.answers, self.requests)
    }

    pub async fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.requests.send(req).await
    }

    /// Send bytes as they are (a raw line, an upload body).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.requests.send_raw(bytes).await
    }

    /// Close the sending side: the node answers what was sent, then closes.
    pub async fn finish(&mut self) -> Result<(), ClientError> {
        let server = self.requests.server.clone();
        self.requests
            .writer
            .shutdown()
            .await
            .map_err(io_error(&server))
    }

    /// The next answer line, without its newline.
    pub async fn recv_line(&mut self) -> Result<&[u8], ClientError> {
        self.answers.recv_line().await
    }

    /// The next answer as `T`; an error line is [`ClientError::Refused`].
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        self.answers.recv().await
    }

    /// Send `req` and read its answer as `T`.
    pub async fn call<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T, ClientError> {
        self.send(req).await?;
        self.recv().await
    }

    /// Submit a task; with `wait`, the answer is the finished task.
    pub async fn submit(
        &mut self,
        kind: &str,
        payload: &[u8],
        wait: bool,
    ) -> Result<TaskView, ClientError> {
        self.submit_with(kind, payload, wait, SubmitOptions::default())
            .await
    }

    /// Submit a task with a key, a delay or a priority.
    pub async fn submit_with(
        &mut self,
        kind: &str,
        payload: &[u8],
        wait: bool,
        options: SubmitOptions,
    ) -> Result<TaskView, ClientError> {
        let req = Request::Submit {
            kind: kind.to_string(),
            payload: payload.to_vec(),
            wait,
            options,
        };
        self.call(&req).await
    }

    /// `CANCEL <id>`.
    pub async fn cancel(&mut self, id: Uuid) -> Result<TaskView, ClientError> {
        self.call(&Request::Cancel(id)).await
    }

    /// Submit exactly `size` bytes read from `body` with `PUT` (binary-safe, any size).
    pub async fn put(
        &mut self,
        kind: &str,
        size: u64,
        body: &mut (impl AsyncRead + Unpin),
        wait: bool,
    ) -> Result<TaskView, ClientError> {
        let req = Request::Put {
            kind: kind.to_string(),
            size,
            wait,
        };
        self.send(&req).await?;
        let server = self.requests.server.clone();
        let copied = tokio::io::copy(&mut body.take(size), &mut self.requests.writer)
            .await
            .map_err(io_error(&server))?;
        if copied != size {
            return Err(ClientError::Io {
                server,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the body ended after {copied} of {size} bytes"),
                ),
            });
        }
        self.recv().await
    }

    pub async fn status(&mut self, id: Uuid) -> Result<TaskView, ClientError> {
        self.call(&Request::Status(id)).await
    }

    /// `RESULT`: when the answer has `bytes`, exactly that many raw bytes follow; read them
    /// with [`Client::read_body`] before the next request.
    pub async fn result(&mut self, id: Uuid) -> Result<TaskView, ClientError> {
        self.call(&Request::Result(id)).await
    }

    /// Copy the `n` raw bytes that follow a `RESULT` header to `out`.
    pub async fn read_body(
        &mut self,
        n: u64,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), ClientError> {
        self.answers.read_body(n, out).await
    }

    pub async fn dead(&mut self, limit: u32) -> Result<DeadList, ClientError> {
        self.call(&Request::Dead(limit)).await
    }

    pub async fn retry(&mut self, id: Uuid) -> Result<TaskView, ClientError> {
        self.call(&Request::Retry(id)).await
    }

    pub async fn kinds(&mut self) -> Result<KindList, ClientError> {
        self.call(&Request::Kinds).await
    }

    /// `AUTH <token>`: who this connection is, for every request after it.
    pub async fn auth(&mut self, token: &str) -> Result<AuthOk, ClientError> {
        self.call(&Request::Auth(token.to_string())).await
    }

    /// `TOKEN CREATE` (admin): the new token and its secret.
    pub async fn token_create(&mut self, new: NewToken) -> Result<TokenCreated, ClientError> {
        self.call(&Request::Token(TokenCommand::Create(new))).await
    }

    pub async fn token_list(&mut self) -> Result<TokenList, ClientError> {
        self.call(&Request::Token(TokenCommand::List)).await
    }

    pub async fn token_revoke(&mut self, name: &str) -> Result<TokenRevoked, ClientError> {
        self.call(&Request::Token(TokenCommand::Revoke(name.to_string())))
            .await
    }

    pub async fn ping(&mut self) -> Result<Pong, ClientError> {
        self.call(&Request::Ping).await
    }

    pub async fn help(&mut self) -> Result<HelpText, ClientError> {
        self.call(&Request::Help).await
    }

    pub async fn quit(&mut self) -> Result<Bye, ClientError> {
        self.call(&Request::Quit).await
    }
}

impl Requests {
    pub async fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        self.send_raw(req.to_line().as_bytes()).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let server = &self.server;
        self.writer.write_all(bytes).await.map_err(io_error(server))
    }
}

/// Just enough of an answer line to tell a refusal from an answer.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    error: Option<ErrorCode>,
}

/// `line` as `T`, or the error line it is.
pub fn decode<T: DeserializeOwned>(server: &str, line: &[u8]) -> Result<T, ClientError> {
    let bad = |reason: String| ClientError::BadAnswer {
        server: server.to_string(),
        reason,
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let probe: Probe = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    if probe.error.is_some_and(|code| !code.is_task_outcome()) {
        let refusal: ErrorLine = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        return Err(ClientError::Refused(refusal));
    }
    serde_json::from_slice(line).map_err(|e| bad(e.to_string()))
}

impl Answers {
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The next answer line, without its newline.
    pub async fn recv_line(&mut self) -> Result<&[u8], ClientError> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(io_error(&self.server))?;
        if n == 0 || self.line.last() != Some(&b'\n') {
            return Err(ClientError::Closed(self.server.clone()));
        }
        self.line.pop();
        Ok(&self.line)
    }

    /// The next answer as `T`; an error line is [`ClientError::Refused`].
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        self.recv_line().await?;
        decode(&self.server, &self.line)
    }

    /// Copy the next `n` raw bytes to `out`.
    pub async fn read_body(
        &mut self,
        n: u64,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), ClientError> {
        let copied = tokio::io::copy(&mut (&mut self.reader).take(n), out)
            .await
            .map_err(io_error(&self.server))?;
        if copied != n {
            return Err(ClientError::Closed(format!(
                "{} (after {copied} of {n} result bytes)",
                self.server
            )));
        }
        out.flush().await.map_err(io_error(&self.server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::TaskStatus;

    #[test]
    fn a_failed_task_is_an_answer_and_an_error_line_a_refusal() {
        let failed = br#"{"id":"00000000-0000-0000-0000-000000000000","kind":"fib","status":"failed","error":"task_failed","message":"bad"}"#;
        let view: TaskView = decode("n", failed).unwrap();
        assert_eq!(view.status, TaskStatus::Failed);
        let refused = br#"{"error":"not_finished","message":"later","status":"running"}"#;
        match decode::<TaskView>("n", refused) {
            Err(ClientError::Refused(line)) => {
                assert_eq!(line.error, ErrorCode::NotFinished);
                assert_eq!(line.status, Some(TaskStatus::Running));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode::<TaskView>("n", b"{nope"),
            Err(ClientError::BadAnswer { .. })
        ));
    }

    #[tokio::test]
    async fn a_call_writes_the_request_line_and_reads_the_typed_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let got = lines.next_line().await.unwrap().unwrap();
            write.write_all(b"{\"bye\":true}\n").await.unwrap();
            got
        });
        let mut c = Client::connect(&addr).await.unwrap();
        assert_eq!(c.quit().await.unwrap(), Bye { bye: true });
        assert_eq!(server.await.unwrap(), "QUIT");
        assert!(matches!(c.recv_line().await, Err(ClientError::Closed(_))));
    }
}
