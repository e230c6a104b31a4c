//! Session advisory locks: one node of the fleet at a time does a job (retention, the
//! janitor's look for stuck rows). A node that dies holding one loses it with its connection.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Take lock `key` for this connection's session; `false` if another session holds it.
pub async fn try_lock(conn: &mut AsyncPgConnection, key: i64) -> QueryResult<bool> {
    let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .get_result(conn)
        .await?;
    Ok(got.locked)
}

/// Give lock `key` back.
pub async fn unlock(conn: &mut AsyncPgConnection, key: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)
        .await
        .map(drop)
}
