//! `taskctl token create|list|revoke`: an admin manages tokens through any node (the same as
//! `tasknode token …` on a node's machine).

use crate::output::print_json;
use clap::Subcommand;
use protocol::{Client, ClientError, NewToken};

#[derive(Subcommand, Clone)]
pub enum TokenCmd {
    /// Make a token; its secret is printed this once (on standard output).
    Create {
        name: String,
        /// submit (submits, reads its own tasks), read (reads its own) or admin (everything).
        #[arg(long)]
        role: String,
        /// At most this many unfinished tasks at once.
        #[arg(long)]
        max_inflight: Option<u32>,
        /// At most this many submissions a second.
        #[arg(long)]
        rate: Option<f64>,
        /// At most this many bytes in one payload.
        #[arg(long)]
        max_payload: Option<u64>,
        /// At most this many schedules (100 if not given).
        #[arg(long)]
        max_schedules: Option<u32>,
    },
    /// Every token, live and revoked (never a secret).
    List,
    /// Revoke a token; every node refuses it within 2 s.
    Revoke { name: String },
}

/// Run `cmd` on `conn`; `json` prints the node's answers as they are.
pub async fn run(conn: &mut Client, cmd: TokenCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        TokenCmd::Create {
            name,
            role,
            max_inflight,
            rate,
            max_payload,
            max_schedules,
        } => {
            let new = NewToken {
                name,
                role,
                max_inflight,
                rate,
                max_payload,
                max_schedules,
            };
            let made = conn.token_create(new).await?;
            if json {
                print_json(&made);
            } else {
                eprintln!(
                    "token `{}` ({}) created; its secret, shown this once:",
                    made.token.name, made.token.role
                );
                println!("{}", made.secret);
            }
        }
        TokenCmd::List => {
            let list = conn.token_list().await?;
            if json {
                print_json(&list);
            } else {
                println!("{}", protocol::TokenList::HEADER);
                for t in &list.tokens {
                    println!("{}", t.row());
                }
            }
        }
        TokenCmd::Revoke { name } => {
            let done = conn.token_revoke(&name).await?;
            if json {
                print_json(&done);
            } else {
                eprintln!(
                    "token `{}` revoked; every node refuses it within 2 s",
                    done.revoked
                );
            }
        }
    }
    Ok(())
}
