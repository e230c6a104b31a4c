//! Hand-written SQL that diesel may keep as a prepared statement.
//!
//! diesel's `sql_query` and multi-row `insert_into(..).values(vec)` are re-parsed and
//! re-planned by PostgreSQL on every call (their text varies, or diesel marks them unsafe to
//! cache). The hot writes of the [`Store`](crate::db::Store) are set-based
//! statements over `UNNEST` of array parameters instead: one fixed text whatever the batch
//! size, so the connection's statement cache prepares each once.

use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Untyped;
use diesel::QueryResult;

/// Where a bind parameter goes in [`Fixed`] SQL text.
const MARK: &str = "$?";

/// Fixed SQL text (with `$?` for each bind parameter, in order) and its parameters.
pub struct Fixed<'a> {
    parts: Vec<&'static str>,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

impl<'a> Fixed<'a> {
    pub fn new(sql: &'static str) -> Self {
        Fixed {
            parts: sql.split(MARK).collect(),
            binds: Vec::new(),
        }
    }

    /// The next parameter, as SQL type `ST`.
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        T: AsExpression<ST>,
        T::Expression: QueryFragment<Pg> + Send + 'a,
        ST: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType,
    {
        self.binds.push(Box::new(value.as_expression()));
        self
    }
}

impl QueryFragment<Pg> for Fixed<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.binds.len() + 1 != self.parts.len() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "{} parameters bound for {} markers",
                    self.binds.len(),
                    self.parts.len() - 1
                )
                .into(),
            ));
        }
        for (i, part) in self.parts.iter().enumerate() {
            out.push_sql(part);
            if let Some(bind) = self.binds.get(i) {
                bind.walk_ast(out.reborrow())?;
            }
        }
        Ok(())
    }
}

/// No static id: diesel keys its statement cache by the SQL text, which is fixed.
impl QueryId for Fixed<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Fixed<'_> {
    type SqlType = Untyped;
}
