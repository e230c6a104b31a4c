//! Asking an actor: its answer, with a mailbox failure (the actor stopped) folded into the
//! answer's own error, so a caller handles one error.

use actix::MailboxError;

/// An actor's answer, with a mailbox failure (the actor stopped) folded into its own error.
pub trait Settle<T, E> {
    fn settle(self) -> Result<T, E>;
}

impl<T, E: From<MailboxError>> Settle<T, E> for Result<Result<T, E>, MailboxError> {
    fn settle(self) -> Result<T, E> {
        self.map_err(E::from).and_then(|answer| answer)
    }
}
