//! The tasknode line protocol, shared by the node, `taskctl` and the tests.
//!
//! One request per line (`\n` or `\r\n`), one JSON object per answer line; a large `RESULT`
//! is a header line with `"bytes":N` followed by exactly N raw bytes, and a `PUT` header is
//! followed by exactly its declared number of raw bytes. See [`HELP`].
//!
//! # Layout
//!
//! - [`request`]: [`Request`], parsed from a line ([`Request::parse`]) and written as one
//!   ([`Request::to_line`]); the `HELP` text.
//! - [`view`]: the answers: [`TaskView`] and [`TaskStatus`], `DEAD`, `KINDS`, `PING`, `HELP`.
//! - [`http`]: what only the HTTP API has: the JSON submission, a page of tasks and its query.
//! - [`fleet`]: what the fleet says of itself (`/v1/overview`, `/v1/me`).
//! - [`control`]: a submission's key, delay and priority; `CANCEL`, `PAUSE`/`RESUME` and
//!   `SCHEDULE` (periodic tasks).
//! - [`token`]: the `TOKEN` requests (admins manage tokens) and their answers.
//! - [`work`]: workers of any language: `WORK`, `DONE`, `FAIL`, `PROGRESS`, `EXTEND`, the
//!   leased task lines they get and the leases that fence them.
//! - [`error`]: [`ErrorLine`] and its [`ErrorCode`]s; [`ProtocolError`] for refused lines.
//! - `codec` (feature `codec`): the node's line codec: request lines and upload bodies in,
//!   answer lines and raw bytes out.
//! - `client` (feature `client`): [`Client`], one typed async connection to a node.
//! - `transport` (feature `client`): how a client reaches a node, plain TCP or (feature
//!   `tls`) TLS.

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "codec")]
pub mod codec;
pub mod control;
pub mod error;
pub mod fleet;
pub mod http;
pub mod request;
pub mod token;
#[cfg(feature = "client")]
pub mod transport;
pub mod view;
pub mod work;

#[cfg(feature = "client")]
pub use client::{Client, ClientError};
pub use control::{
    Missed, NewSchedule, PauseTarget, Paused, ScheduleCommand, ScheduleInfo, ScheduleList,
    ScheduleRemoved, SubmitOptions,
};
pub use error::{ErrorCode, ErrorLine, ProtocolError};
pub use request::{Request, HELP};
pub use token::{NewToken, TokenCommand, TokenCreated, TokenInfo, TokenList, TokenRevoked};
#[cfg(feature = "client")]
pub use transport::Transport;
pub use view::{
    AuthOk, Bye, Check, DeadList, DeadTask, HelpText, KindInfo, KindList, Pong, ResultEncoding,
    TaskStatus, TaskView,
};
pub use work::{WorkCommand, WorkTask, WorkerLine};
