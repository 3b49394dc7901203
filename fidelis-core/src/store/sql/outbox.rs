//! The outbox relay's claim in one statement ([`Storage::claim_outbox`]): the rows a relay
//! may publish now are chosen and claimed by one `UPDATE … RETURNING`, in a transaction
//! of its own, instead of a read and a version-checked write per row.
//!
//! [`Storage::claim_outbox`]: crate::store::Storage::claim_outbox

use super::store::{Dialect, On, SqlStore, db_error};
use super::{SqlValue, Statement, Syntax, quote, select_columns};
use crate::model::error::Result;
use crate::store::system::{OutboxMessage, SystemRow};
use crate::store::{JsonRow, OutboxClaim};

/// The claim as one statement, with the relay's rule (`engine/relay.rs`) in SQL: of the
/// domain's `limit` oldest rows, each stream's rows before the first one another relay
/// holds (a claim of another owner that has not lapsed). Only the oldest rows are looked
/// at, as the relay without this statement reads them, so the cost does not grow with the
/// backlog (the `(domain, position)` index finds them).
pub(crate) fn claim_statement(syntax: Syntax, claim: &OutboxClaim<'_>) -> Statement {
    let table = quote(OutboxMessage::TABLE.name);
    let mut statement = Statement::new(syntax, "");
    // Parameters in the order they appear: SQLite's `?` binds by position.
    let domain = statement.param(SqlValue::Text(claim.domain.to_owned()));
    let limit = statement.param(SqlValue::Int(
        i64::try_from(claim.limit).unwrap_or(i64::MAX),
    ));
    let other = statement.param(SqlValue::Text(claim.owner.to_owned()));
    let now = statement.param(SqlValue::Time(claim.now));
    let owner = statement.param(SqlValue::Text(claim.owner.to_owned()));
    let until = statement.param(SqlValue::Time(claim.until));
    // `<>` and `>` are not true on NULL: a row nobody claimed holds nothing.
    statement.sql = format!(
        "WITH head AS (\
            SELECT \"id\", \"stream\", \"position\", \"claimed_by\", \"claimed_until\" FROM {table} \
            WHERE \"domain\" = {domain} ORDER BY \"position\" LIMIT {limit}\
         ), held AS (\
            SELECT \"stream\", MIN(\"position\") AS first_held FROM head \
            WHERE \"claimed_by\" <> {other} AND \"claimed_until\" > {now} GROUP BY \"stream\"\
         ) \
         UPDATE {table} SET \"claimed_by\" = {owner}, \"claimed_until\" = {until}, \"_version\" = \"_version\" + 1 \
         WHERE \"id\" IN (\
            SELECT head.\"id\" FROM head LEFT JOIN held ON held.\"stream\" = head.\"stream\" \
            WHERE held.first_held IS NULL OR head.\"position\" < held.first_held\
         ) \
         RETURNING {}",
        select_columns(&OutboxMessage::TABLE)
    );
    statement
}

/// Whether the domain has any outbox row (one indexed read): an idle relay polls with it, so
/// its polls stay reads and do not take SQLite's one writer.
fn any_row_statement(syntax: Syntax, domain: &str) -> Statement {
    let mut statement = Statement::new(syntax, "");
    let domain = statement.param(SqlValue::Text(domain.to_owned()));
    statement.sql = format!(
        "SELECT CAST(1 AS BIGINT) FROM {} WHERE \"domain\" = {domain} LIMIT 1",
        quote(OutboxMessage::TABLE.name)
    );
    statement
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) async fn claim_outbox(
        &self,
        claim: &OutboxClaim<'_>,
    ) -> Result<Option<Vec<JsonRow>>> {
        let table = OutboxMessage::TABLE.name;
        let statements = self.schemas.get(table)?;
        let what = format!("claiming outbox rows of domain `{}`", claim.domain);
        let any = D::integers(
            On::Pool(&self.pool),
            any_row_statement(D::SYNTAX, claim.domain),
        )
        .await
        .map_err(|error| db_error(&self.url, &what, error))?;
        if any.is_none() {
            return Ok(Some(Vec::new()));
        }
        let mut transaction = self.dialect.begin(&self.pool, &self.url).await?;
        // The domain's relays claim one after another (PostgreSQL: an advisory lock until
        // the commit; SQLite's one writer already), so the statement of the second starts
        // after the first committed and leaves its claims alone. Without the lock, both
        // could read the same oldest rows, and the second, waiting on the first's row locks,
        // would then claim them again.
        D::lock_row(&mut transaction, table, &format!("relay:{}", claim.domain))
            .await
            .map_err(|error| db_error(&self.url, &what, error))?;
        let statement = claim_statement(D::SYNTAX, claim);
        let rows = D::documents(On::Tx(&mut transaction), &statements.schema, statement)
            .await
            .map_err(|failure| super::store::failed(&self.url, &what, failure))?;
        D::commit(transaction)
            .await
            .map_err(|error| db_error(&self.url, &what, error))?;
        Ok(Some(rows))
    }
}
