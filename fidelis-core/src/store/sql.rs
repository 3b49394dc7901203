//! One SQL store for SQLite and PostgreSQL: [`SqlStore`] (in `sql/store.rs`) implements the
//! storage port once over a [`Dialect`]; `sql/sqlite.rs` and `sql/postgres.rs` hold only what
//! differs (connecting, binding and decoding, the events table and appends, how a write
//! transaction starts, the global order's read condition). This module holds what the
//! statements share: identifier checks, column types, table DDL, schema drift, the per-table
//! statements built once at `setup` ([`TableStatements`]), and the translation of a
//! [`QuerySpec`] into one parameterized statement.
//!
//! Values never enter SQL text: every value becomes a bind parameter ([`SqlValue`]).
//! Identifiers (table and column names) come from field definitions; they are checked
//! against `[a-z_][a-z0-9_]*` and quoted, so a name can neither break nor inject SQL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::model::error::{Error, Result};
use crate::model::field::{FieldDef, FieldKind};
use crate::model::query::{CompareOp, Condition, QuerySpec, QueryValue};
use crate::store::TableSchema;

mod outbox;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod store;

pub(crate) use store::{Dialect, Failure, On, SqlStore};

/// The events table of both adapters.
pub(crate) const EVENTS_TABLE: &str = "fidelis_events";
/// The version column every document table has, besides its fields.
pub(crate) const VERSION_COLUMN: &str = "_version";

/// The first position strictly after a cursor where `commit == position` (one writer):
/// `(p, p) > (c, q)` holds for `p > c`, and for `p == c` when `c > q`.
#[cfg(feature = "sqlite")]
pub(crate) fn first_position_after(after: crate::store::Cursor) -> i64 {
    if after.commit > after.position {
        after.commit
    } else {
        after.commit.saturating_add(1)
    }
}

/// The SQL condition of a partition of the streams on the `stream_hash` column, as
/// [`Partition::contains`](crate::store::Partition::contains) decides it (a non-negative
/// remainder). The numbers are checked integers, so they are written into the text.
pub(crate) fn partition_condition(partition: &crate::store::Partition) -> String {
    let count = i64::from(partition.count);
    format!(
        "((stream_hash % {count}) + {count}) % {count} = {}",
        partition.index
    )
}

/// The SQL spoken by an adapter. (A build with one SQL feature constructs one variant.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Syntax {
    Sqlite,
    Postgres,
}

/// A bind parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SqlValue {
    /// A NULL of the column's kind (PostgreSQL needs typed NULLs).
    Null(FieldKind),
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    Json(Value),
    /// An exact decimal: `NUMERIC` on PostgreSQL, its text on SQLite.
    #[cfg(feature = "decimal")]
    Decimal(rust_decimal::Decimal),
}

/// The collation SQLite compares and orders decimal columns with (their text, by value); the
/// SQLite adapter registers it on every connection.
pub(crate) const DECIMAL_COLLATION: &str = "fidelis_decimal";

/// Whether `name` may be used as a table or column name: `[a-z_][a-z0-9_]*`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// The quoted identifier. Only called on names [`is_identifier`] accepted (checked in
/// [`check_schemas`] and [`Schemas::get`]), so quoting cannot be escaped.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Checks every table and column name; one configuration error lists every bad name.
pub(crate) fn check_schemas(tables: &[TableSchema]) -> Result<()> {
    let mut problems = Vec::new();
    for table in tables {
        if table.name == EVENTS_TABLE {
            problems.push(format!(
                "table name `{}` of `{}` is the events table's: rename the element or the domain",
                table.name, table.element
            ));
        }
        if !is_identifier(table.name) {
            problems.push(format!(
                "table name `{}` cannot be used in SQL: names must match [a-z_][a-z0-9_]* (at most 63 characters)",
                table.name
            ));
        }
        for field in table.fields {
            if !is_identifier(field.name) || field.name == VERSION_COLUMN {
                problems.push(format!(
                    "field `{}` of table `{}` cannot be a column: names must match [a-z_][a-z0-9_]* and not be `{VERSION_COLUMN}`",
                    field.name, table.name
                ));
            }
        }
        if !table
            .fields
            .iter()
            .any(|field| field.name == table.identifier)
        {
            problems.push(format!(
                "table `{}` has no field `{}` to use as its primary key",
                table.name, table.identifier
            ));
        }
        index_problems(table, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Configuration { problems })
    }
}

/// The tables an adapter was set up with, and their statements.
#[derive(Default)]
pub(crate) struct Schemas {
    tables: RwLock<HashMap<String, Arc<TableStatements>>>,
}

impl Schemas {
    /// Remembers the tables (after [`check_schemas`]) and builds their statements.
    pub(crate) fn insert(&self, syntax: Syntax, tables: &[TableSchema]) {
        let mut known = self
            .tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for table in tables {
            known.insert(
                table.name.to_owned(),
                Arc::new(TableStatements::new(syntax, table)),
            );
        }
    }

    /// The statements of a table, or a configuration error when `setup` has not seen it.
    pub(crate) fn get(&self, table: &str) -> Result<Arc<TableStatements>> {
        let known = self
            .tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(table).cloned().ok_or_else(|| {
            Error::configuration(format!(
                "table `{table}` is not set up: call `domain.setup_database()` (or `Storage::setup`) with its schema first"
            ))
        })
    }
}

/// The column type of a field.
pub(crate) fn column_type(syntax: Syntax, field: &FieldDef) -> String {
    let text = || match field.max_length {
        Some(n) => format!("VARCHAR({n})"),
        None => "TEXT".to_owned(),
    };
    match (syntax, field.kind) {
        (_, FieldKind::Identifier | FieldKind::String) => text(),
        // The variant's name. No CHECK constraint: `CREATE TABLE IF NOT EXISTS` would keep the
        // first list of variants, and writes of a variant added later would fail; a row is
        // checked against the current variants when it is read instead.
        (_, FieldKind::Enum) => "TEXT".to_owned(),
        (_, FieldKind::Integer) => "BIGINT".to_owned(),
        (Syntax::Postgres, FieldKind::Float) => "DOUBLE PRECISION".to_owned(),
        // SQLite writes a REAL column's whole numbers as integers, so -0.0 would read back as
        // 0.0. `BLOB` in the declared type gives the column no affinity: every double is kept
        // as the 8 bytes it was bound as (and still compares and orders as a number).
        (Syntax::Sqlite, FieldKind::Float) => "DOUBLE PRECISION BLOB".to_owned(),
        // A decimal's text is exact and keeps its scale (`1500.00`); SQLite has no exact
        // numeric type (its NUMERIC affinity turns `0.1` into a REAL).
        (Syntax::Postgres, FieldKind::Decimal) => "NUMERIC".to_owned(),
        (Syntax::Sqlite, FieldKind::Decimal) => "TEXT".to_owned(),
        (_, FieldKind::Boolean) => "BOOLEAN".to_owned(),
        // SQLite has no time, date or JSON types: a fixed-width RFC 3339 text orders like
        // the time it spells, and JSON is kept as its text.
        (Syntax::Sqlite, FieldKind::DateTime | FieldKind::Date) => "TEXT".to_owned(),
        (
            Syntax::Sqlite,
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict,
        ) => "TEXT".to_owned(),
        (Syntax::Postgres, FieldKind::DateTime) => "TIMESTAMPTZ".to_owned(),
        (Syntax::Postgres, FieldKind::Date) => "DATE".to_owned(),
        // `JSON` keeps the text Fidelis wrote, so every f64 in it reads back with the same
        // bits; `JSONB` keeps numbers as NUMERIC, which has no -0.0. A unique column needs
        // JSONB's equality.
        (
            Syntax::Postgres,
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict,
        ) => if field.unique { "JSONB" } else { "JSON" }.to_owned(),
    }
}

/// `CREATE TABLE IF NOT EXISTS` for a document table (names already checked).
pub(crate) fn create_table(syntax: Syntax, table: &TableSchema) -> String {
    let mut columns: Vec<String> = table
        .fields
        .iter()
        .map(|field| {
            let mut column = format!("{} {}", quote(field.name), column_type(syntax, field));
            if field.required || field.name == table.identifier {
                column.push_str(" NOT NULL");
            }
            if field.unique && field.name != table.identifier {
                column.push_str(" UNIQUE");
            }
            column
        })
        .collect();
    columns.push(format!("{} BIGINT NOT NULL", quote(VERSION_COLUMN)));
    columns.push(format!("PRIMARY KEY ({})", quote(table.identifier)));
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(table.name),
        columns.join(", ")
    )
}

/// The name of a secondary index: `<table>_<columns>_idx`.
fn index_name(table: &TableSchema, columns: &[&str]) -> String {
    format!("{}_{}_idx", table.name, columns.join("_"))
}

/// Adds a sentence per index that names no columns, a column that is not a field, or whose
/// name would be too long (PostgreSQL would shorten it, and two could end up the same).
fn index_problems(table: &TableSchema, problems: &mut Vec<String>) {
    for columns in table.indexes {
        if columns.is_empty() {
            problems.push(format!("an index of table `{}` has no columns", table.name));
            continue;
        }
        for column in *columns {
            if !table.fields.iter().any(|field| field.name == *column) {
                problems.push(format!(
                    "the index on ({}) of table `{}` names `{column}`, which is not one of its fields",
                    columns.join(", "),
                    table.name
                ));
            }
        }
        let name = index_name(table, columns);
        if !is_identifier(&name) {
            problems.push(format!(
                "the index on ({}) of table `{}` would be named `{name}`, longer than 63 characters",
                columns.join(", "),
                table.name
            ));
        }
    }
}

/// `CREATE INDEX IF NOT EXISTS` for each secondary index of a table (checked by
/// [`check_schemas`]). Run at every `setup`, so tables made before an index was declared
/// get it too.
pub(crate) fn create_indexes(table: &TableSchema) -> Vec<String> {
    table
        .indexes
        .iter()
        .map(|columns| {
            let quoted: Vec<String> = columns.iter().map(|column| quote(column)).collect();
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(&index_name(table, columns)),
                quote(table.name),
                quoted.join(", ")
            )
        })
        .collect()
}

/// A column as the database describes it.
#[derive(Clone, Debug)]
pub(crate) struct ExistingColumn {
    pub(crate) name: String,
    /// The declared type (SQLite) or `information_schema` data type (PostgreSQL).
    pub(crate) data_type: String,
    pub(crate) not_null: bool,
}

/// Families of column types: a column matches a field when their families agree
/// (`VARCHAR(50)` and `TEXT` are both text; the length is not compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Text,
    Integer,
    Float,
    Numeric,
    Boolean,
    TimestampTz,
    Date,
    Json,
    Other,
}

fn family_of_type(data_type: &str) -> Family {
    let t = data_type.to_ascii_uppercase();
    if t.contains("CHAR") || t.contains("TEXT") || t.contains("CLOB") {
        Family::Text
    } else if t.contains("INT") {
        Family::Integer
    } else if t.contains("DOUBLE") || t.contains("FLOAT") || t.contains("REAL") {
        Family::Float
    } else if t.contains("NUMERIC") || t.contains("DECIMAL") {
        Family::Numeric
    } else if t.contains("BOOL") {
        Family::Boolean
    } else if t == "TIMESTAMPTZ" || t.contains("WITH TIME ZONE") {
        Family::TimestampTz
    } else if t == "DATE" {
        Family::Date
    } else if t.contains("JSON") {
        Family::Json
    } else {
        Family::Other
    }
}

fn family_of_field(syntax: Syntax, field: &FieldDef) -> Family {
    family_of_type(&column_type(syntax, field))
}

/// Compares an existing table with its schema; adds one sentence per mismatch.
pub(crate) fn drift(
    syntax: Syntax,
    table: &TableSchema,
    existing: &[ExistingColumn],
    problems: &mut Vec<String>,
) {
    let by_name: HashMap<&str, &ExistingColumn> =
        existing.iter().map(|c| (c.name.as_str(), c)).collect();
    let name = table.name;
    for field in table.fields {
        let Some(column) = by_name.get(field.name) else {
            problems.push(format!(
                "table `{name}` has no column `{}` (field `{}: {}`); add it or drop the table",
                field.name, field.name, field.rust_type
            ));
            continue;
        };
        let expected = family_of_field(syntax, field);
        if family_of_type(&column.data_type) != expected {
            problems.push(format!(
                "column `{}` of table `{name}` is {}, but field `{}: {}` needs {}; alter the column or drop the table",
                field.name,
                column.data_type,
                field.name,
                field.rust_type,
                column_type(syntax, field)
            ));
        } else if column.not_null && !field.required && field.name != table.identifier {
            problems.push(format!(
                "column `{}` of table `{name}` is NOT NULL, but field `{}: {}` is optional; drop the constraint or the table",
                field.name, field.name, field.rust_type
            ));
        }
    }
    match by_name.get(VERSION_COLUMN) {
        None => problems.push(format!(
            "table `{name}` has no column `{VERSION_COLUMN}` (the row version Fidelis keeps); add it (BIGINT NOT NULL) or drop the table"
        )),
        Some(column) if family_of_type(&column.data_type) != Family::Integer => problems.push(format!(
            "column `{VERSION_COLUMN}` of table `{name}` is {}, but must be BIGINT; alter the column or drop the table",
            column.data_type
        )),
        Some(_) => {}
    }
    for column in existing {
        let declared =
            column.name == VERSION_COLUMN || table.fields.iter().any(|f| f.name == column.name);
        if !declared && column.not_null {
            problems.push(format!(
                "table `{name}` has a NOT NULL column `{}` that no field declares, so inserts would fail; drop the column or the table",
                column.name
            ));
        }
    }
}

/// When a table is missing but the table earlier Fidelis versions named without the domain
/// prefix is there with the same columns, the sentence that says how to rename it: starting
/// with an empty new table would silently hide every existing row.
pub(crate) fn former_table(
    syntax: Syntax,
    table: &TableSchema,
    former: &[ExistingColumn],
) -> Option<String> {
    let former_name = table.former_name.filter(|name| *name != table.name)?;
    let same_columns = former.len() == table.fields.len() + 1
        && former.iter().all(|column| {
            column.name == VERSION_COLUMN || table.fields.iter().any(|f| f.name == column.name)
        });
    if !same_columns {
        return None;
    }
    let schema_note = match syntax {
        Syntax::Sqlite => "",
        Syntax::Postgres => " (in the connection's schema)",
    };
    Some(format!(
        "table `{former_name}`{schema_note} holds the rows of `{}` under the name Fidelis used before tables were prefixed with their domain; rename it before starting: `ALTER TABLE {} RENAME TO {}`",
        table.element,
        quote(former_name),
        quote(table.name)
    ))
}

/// A unique violation of one of the table's `#[field(unique)]` columns, as the field's
/// validation error ([`already_taken`](crate::store::already_taken)); `None` for any other
/// error. The database's own error is read (not a check before the write), so two writers
/// racing for one value cannot both win.
pub(crate) fn unique_violation(table: &TableSchema, error: &sqlx::Error) -> Option<Error> {
    let sqlx::Error::Database(error) = error else {
        return None;
    };
    if !error.is_unique_violation() {
        return None;
    }
    let unique: Vec<&str> = table
        .fields
        .iter()
        .filter(|field| field.unique && field.name != table.identifier)
        .map(|field| field.name)
        .collect();
    let field = match error.constraint() {
        // PostgreSQL names the constraint: `<table>_<column>_key` as it named it when the
        // table was created.
        Some(constraint) => unique
            .iter()
            .copied()
            .find(|field| is_postgres_unique_name(constraint, table.name, field))?,
        // SQLite names the column: `UNIQUE constraint failed: <table>.<column>`.
        None => {
            let failed = error.message().rsplit("constraint failed: ").next()?;
            unique.iter().copied().find(|field| {
                failed
                    .split(", ")
                    .any(|column| column == format!("{}.{field}", table.name))
            })?
        }
    };
    Some(crate::store::already_taken(table.element, field))
}

/// Whether `constraint` is the name PostgreSQL gives the `UNIQUE` constraint of `column` in
/// `table`: `<table>_<column>_key`, the longer of the two names shortened until it fits in 63
/// bytes, with a number after `key` when the name was taken.
fn is_postgres_unique_name(constraint: &str, table: &str, column: &str) -> bool {
    const MAX: usize = 63;
    let available = MAX - "_key".len() - 1;
    let (mut table_len, mut column_len) = (table.len(), column.len());
    while table_len + column_len > available {
        if table_len > column_len {
            table_len -= 1;
        } else {
            column_len -= 1;
        }
    }
    let name = format!("{}_{}_key", &table[..table_len], &column[..column_len]);
    constraint
        .strip_prefix(&name)
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// The events table's columns and their families, to check an existing events table.
pub(crate) fn events_drift(
    syntax: Syntax,
    existing: &[ExistingColumn],
    problems: &mut Vec<String>,
) {
    if syntax == Syntax::Postgres {
        check_event_column(existing, "transaction_id", &[Family::Integer], problems);
    }
    let wanted: [(&str, &[Family]); 10] = [
        ("global_position", &[Family::Integer]),
        ("stream_hash", &[Family::Integer]),
        ("id", &[Family::Text]),
        ("stream", &[Family::Text]),
        ("category", &[Family::Text]),
        ("version", &[Family::Integer]),
        ("type_name", &[Family::Text]),
        ("data", &[Family::Json, Family::Text]),
        ("metadata", &[Family::Json, Family::Text]),
        ("time", &[Family::TimestampTz, Family::Text]),
    ];
    for (column, families) in wanted {
        check_event_column(existing, column, families, problems);
    }
}

fn check_event_column(
    existing: &[ExistingColumn],
    column: &str,
    families: &[Family],
    problems: &mut Vec<String>,
) {
    match existing.iter().find(|c| c.name == column) {
        None => problems.push(format!(
            "table `{EVENTS_TABLE}` has no column `{column}`; it was not created by this version of Fidelis"
        )),
        Some(found) if !families.contains(&family_of_type(&found.data_type)) => problems.push(format!(
            "column `{column}` of table `{EVENTS_TABLE}` has the unexpected type {}",
            found.data_type
        )),
        Some(_) => {}
    }
}

/// The time as SQLite stores it: RFC 3339 with nanoseconds, so that text order is time order.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A time as a document field holds it (the way `chrono` serializes it).
pub(crate) fn time_json(time: DateTime<Utc>) -> Value {
    serde_json::to_value(time).unwrap_or_else(|_| Value::String(time.to_rfc3339()))
}

fn serialization(table: &str, id: &str, field: &str, message: impl Into<String>) -> Error {
    Error::Serialization {
        what: format!("field `{field}` of row `{id}` in table `{table}`"),
        message: message.into(),
    }
}

/// A document's field as a bind parameter for its column.
pub(crate) fn field_value(
    table: &str,
    id: &str,
    field: &FieldDef,
    value: Option<&Value>,
) -> Result<SqlValue> {
    let value = match value {
        None | Some(Value::Null) => return Ok(SqlValue::Null(field.kind)),
        Some(value) => value,
    };
    let wrong = |expected: &str| {
        serialization(
            table,
            id,
            field.name,
            format!("expected {expected}, found `{value}`"),
        )
    };
    Ok(match field.kind {
        FieldKind::Identifier | FieldKind::String => {
            SqlValue::Text(value.as_str().ok_or_else(|| wrong("text"))?.to_owned())
        }
        FieldKind::Enum => SqlValue::Text(
            value
                .as_str()
                .ok_or_else(|| wrong("a variant name"))?
                .to_owned(),
        ),
        FieldKind::Integer => {
            SqlValue::Int(value.as_i64().ok_or_else(|| wrong("a 64-bit integer"))?)
        }
        FieldKind::Float => SqlValue::Float(match value {
            // `allow_non_finite` fields write NaN and infinities by name.
            Value::String(name) if field.allow_non_finite => {
                crate::model::field::non_finite::parse_name(name)
                    .ok_or_else(|| wrong("a number, or \"NaN\", \"inf\" or \"-inf\""))?
            }
            value => value.as_f64().ok_or_else(|| wrong("a number"))?,
        }),
        #[cfg(feature = "decimal")]
        FieldKind::Decimal => SqlValue::Decimal(
            value
                .as_str()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| wrong("a decimal as text (\"1500.00\")"))?,
        ),
        #[cfg(not(feature = "decimal"))]
        FieldKind::Decimal => return Err(no_decimal_feature()),
        FieldKind::Boolean => SqlValue::Bool(value.as_bool().ok_or_else(|| wrong("a boolean"))?),
        FieldKind::DateTime => {
            let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            let time = DateTime::parse_from_rfc3339(text).map_err(|_| wrong("an RFC 3339 time"))?;
            SqlValue::Time(time.with_timezone(&Utc))
        }
        FieldKind::Date => {
            let text = value.as_str().ok_or_else(|| wrong("a date"))?;
            SqlValue::Date(
                text.parse::<NaiveDate>()
                    .map_err(|_| wrong("a date (YYYY-MM-DD)"))?,
            )
        }
        FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict => {
            SqlValue::Json(value.clone())
        }
    })
}

/// A decimal column without the `decimal` feature (only a hand-written `FieldDef` can ask).
#[cfg(not(feature = "decimal"))]
pub(crate) fn no_decimal_feature() -> Error {
    Error::configuration(
        "a field of kind Decimal needs fidelis-core's `decimal` feature".to_owned(),
    )
}

/// The JSON of a float read from a column: a number, or the name of a non-finite value
/// (which only an `allow_non_finite` field can have written).
pub(crate) fn float_json(value: f64) -> Value {
    crate::model::field::non_finite::to_json(value)
}

/// JSON as PostgreSQL receives it: as text, cast to `json`, so that a `json` column keeps
/// exactly what was written. Bound as `jsonb` (sqlx's `Json`), numbers would pass through
/// NUMERIC, which has no -0.0.
#[cfg(feature = "postgres")]
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// The primary key value of a row with this id, typed for the identifier's column.
pub(crate) fn key_value(table: &TableSchema, id: &str) -> Option<SqlValue> {
    let field = table
        .fields
        .iter()
        .find(|field| field.name == table.identifier)?;
    match field.kind {
        FieldKind::Integer => id.parse().ok().map(SqlValue::Int),
        _ => Some(SqlValue::Text(id.to_owned())),
    }
}

/// The primary key as `JsonRow::id` spells it (integer identifiers become their digits).
pub(crate) fn id_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The columns of a document table in select order: every field, then the version.
pub(crate) fn select_columns(table: &TableSchema) -> String {
    let mut columns: Vec<String> = table.fields.iter().map(|field| quote(field.name)).collect();
    columns.push(quote(VERSION_COLUMN));
    columns.join(", ")
}

/// Builds the document of a row from its decoded field values (in field order) and version.
pub(crate) fn document(
    table: &TableSchema,
    values: Vec<Value>,
    version: i64,
) -> crate::store::JsonRow {
    let mut data = Map::new();
    let mut id = String::new();
    for (field, value) in table.fields.iter().zip(values) {
        if field.name == table.identifier {
            id = id_of(&value);
        }
        data.insert(field.name.to_owned(), value);
    }
    crate::store::JsonRow { id, version, data }
}

/// A statement under construction: SQL text with placeholders, and the values they bind.
pub(crate) struct Statement {
    syntax: Syntax,
    pub(crate) sql: String,
    pub(crate) params: Vec<SqlValue>,
}

impl Statement {
    pub(crate) fn new(syntax: Syntax, sql: impl Into<String>) -> Self {
        Self {
            syntax,
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// A statement whose placeholders are already written (a cached one).
    pub(crate) fn with(syntax: Syntax, sql: &str, params: Vec<SqlValue>) -> Self {
        Self {
            syntax,
            sql: sql.to_owned(),
            params,
        }
    }

    /// Adds a parameter; returns its placeholder (`?` or `$n`). PostgreSQL JSON is bound as
    /// text and cast to `json` here (see [`json_text`]).
    pub(crate) fn param(&mut self, value: SqlValue) -> String {
        let json = matches!(value, SqlValue::Json(_));
        self.params.push(value);
        match self.syntax {
            Syntax::Sqlite => "?".to_owned(),
            Syntax::Postgres if json => format!("${}::json", self.params.len()),
            Syntax::Postgres => format!("${}", self.params.len()),
        }
    }
}

/// The statements of one table, built once at `setup` and reused by every read and write of
/// its rows (only their values change).
pub(crate) struct TableStatements {
    pub(crate) schema: TableSchema,
    /// Every column of the row with key `1`.
    pub(crate) select_by_id: String,
    /// [`select_by_id`](Self::select_by_id), the row locked until the transaction ends where
    /// the database locks rows (`FOR UPDATE` on PostgreSQL).
    pub(crate) select_for_update: String,
    /// The version of the row with key `1`, locked until the transaction ends where the
    /// database locks rows (`FOR UPDATE` on PostgreSQL; SQLite's one writer holds them all).
    pub(crate) version_by_id: String,
    /// `INSERT … ON CONFLICT (id) DO UPDATE` of [`row_values`].
    pub(crate) upsert: String,
    /// A plain `INSERT` of [`row_values`], which fails on an existing row (a new row whose
    /// existence two writers race for must not be silently overwritten by the second).
    pub(crate) insert: String,
    /// Deletes the row with key `1`.
    pub(crate) delete: String,
}

impl TableStatements {
    pub(crate) fn new(syntax: Syntax, table: &TableSchema) -> Self {
        let name = quote(table.name);
        let key = quote(table.identifier);
        let mut columns: Vec<String> = table.fields.iter().map(|field| quote(field.name)).collect();
        columns.push(quote(VERSION_COLUMN));
        // JSON is bound as text and cast to `json` on PostgreSQL (see `json_text`).
        let placeholders: Vec<String> = table
            .fields
            .iter()
            .map(|field| {
                matches!(
                    field.kind,
                    FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict
                )
            })
            .chain([false])
            .enumerate()
            .map(|(index, json)| match (syntax, json) {
                (Syntax::Sqlite, _) => "?".to_owned(),
                (Syntax::Postgres, true) => format!("${}::json", index + 1),
                (Syntax::Postgres, false) => format!("${}", index + 1),
            })
            .collect();
        let first = match syntax {
            Syntax::Sqlite => "?",
            Syntax::Postgres => "$1",
        };
        let insert = format!(
            "INSERT INTO {name} ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        );
        let updates: Vec<String> = columns
            .iter()
            .filter(|column| **column != key)
            .map(|column| format!("{column} = excluded.{column}"))
            .collect();
        let lock = match syntax {
            Syntax::Sqlite => "",
            Syntax::Postgres => " FOR UPDATE",
        };
        Self {
            schema: *table,
            select_by_id: format!(
                "SELECT {} FROM {name} WHERE {key} = {first}",
                select_columns(table)
            ),
            select_for_update: format!(
                "SELECT {} FROM {name} WHERE {key} = {first}{lock}",
                select_columns(table)
            ),
            version_by_id: format!(
                "SELECT {} FROM {name} WHERE {key} = {first}{lock}",
                quote(VERSION_COLUMN)
            ),
            upsert: format!(
                "{insert} ON CONFLICT ({key}) DO UPDATE SET {}",
                updates.join(", ")
            ),
            insert,
            delete: format!("DELETE FROM {name} WHERE {key} = {first}"),
        }
    }
}

/// The values of a document in the column order of [`TableStatements::upsert`]: its fields,
/// then its version.
pub(crate) fn row_values(
    table: &TableSchema,
    document: &crate::store::JsonRow,
) -> Result<Vec<SqlValue>> {
    let mut values = Vec::with_capacity(table.fields.len() + 1);
    for field in table.fields {
        values.push(if field.name == table.identifier {
            key_value(table, &document.id).ok_or_else(|| {
                serialization(
                    table.name,
                    &document.id,
                    field.name,
                    "the id is not a valid key for this column",
                )
            })?
        } else {
            field_value(
                table.name,
                &document.id,
                field,
                document.data.get(field.name),
            )?
        });
    }
    values.push(SqlValue::Int(document.version));
    Ok(values)
}

/// A `SELECT` of matching rows (ordered and paged), or their `COUNT(*)`.
pub(crate) fn select(
    syntax: Syntax,
    table: &TableSchema,
    query: &QuerySpec,
    count: bool,
) -> Result<Statement> {
    let head = if count {
        format!("SELECT COUNT(*) FROM {}", quote(table.name))
    } else {
        format!(
            "SELECT {} FROM {}",
            select_columns(table),
            quote(table.name)
        )
    };
    let mut statement = Statement::new(syntax, head);
    let mut conditions = Vec::new();
    for condition in &query.filters {
        conditions.push(translate(&mut statement, table, condition)?);
    }
    if !conditions.is_empty() {
        statement.sql.push_str(" WHERE ");
        statement.sql.push_str(&conditions.join(" AND "));
    }
    if count {
        return Ok(statement);
    }
    let mut keys = Vec::new();
    for order in &query.order {
        let field = field(table, order.field)?;
        let direction = if order.descending { "DESC" } else { "ASC" };
        keys.push(format!(
            "{} {direction} NULLS LAST",
            column_expr(syntax, field)
        ));
    }
    // Ties are broken by the primary key, so that paging is stable.
    let key = field(table, table.identifier)?;
    keys.push(format!("{} ASC", column_expr(syntax, key)));
    statement.sql.push_str(" ORDER BY ");
    statement.sql.push_str(&keys.join(", "));
    let limit = query
        .limit
        .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    match (syntax, limit) {
        (_, Some(limit)) => {
            let placeholder = statement.param(SqlValue::Int(limit));
            statement.sql.push_str(&format!(" LIMIT {placeholder}"));
        }
        // SQLite accepts OFFSET only after a LIMIT; -1 means none.
        (Syntax::Sqlite, None) if offset > 0 => statement.sql.push_str(" LIMIT -1"),
        _ => {}
    }
    if offset > 0 {
        let placeholder = statement.param(SqlValue::Int(offset));
        statement.sql.push_str(&format!(" OFFSET {placeholder}"));
    }
    Ok(statement)
}

fn field<'a>(table: &'a TableSchema, name: &str) -> Result<&'a FieldDef> {
    table
        .fields
        .iter()
        .find(|field| field.name == name)
        .ok_or_else(|| {
            Error::configuration(format!(
                "table `{}` has no field `{name}` to filter or order by",
                table.name
            ))
        })
}

/// The column as compared and ordered: PostgreSQL text uses the "C" collation, so that text
/// compares by code point on every adapter (as in memory), whatever the database's locale.
fn column_expr(syntax: Syntax, field: &FieldDef) -> String {
    match (syntax, field.kind) {
        (Syntax::Postgres, FieldKind::Identifier | FieldKind::String | FieldKind::Enum) => {
            format!("{} COLLATE \"C\"", quote(field.name))
        }
        // SQLite keeps decimals as text: compared and ordered by value, not by text.
        (Syntax::Sqlite, FieldKind::Decimal) => {
            format!("{} COLLATE {DECIMAL_COLLATION}", quote(field.name))
        }
        // `json` has no ordering: order as `jsonb` did.
        (
            Syntax::Postgres,
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict,
        ) => format!("{}::jsonb", quote(field.name)),
        _ => quote(field.name),
    }
}

/// A query value as a parameter for a column of this kind, or `None` when no stored value of
/// the kind can equal or compare with it (such conditions match no row, as in memory).
fn coerce(kind: FieldKind, value: &QueryValue) -> Option<SqlValue> {
    match (kind, value) {
        (_, QueryValue::Null) => None,
        (FieldKind::Identifier | FieldKind::String | FieldKind::Enum, QueryValue::Text(text)) => {
            Some(SqlValue::Text(text.clone()))
        }
        (FieldKind::Integer, QueryValue::Int(i)) => Some(SqlValue::Int(*i)),
        (FieldKind::Integer | FieldKind::Float, QueryValue::Float(f)) => Some(SqlValue::Float(*f)),
        #[allow(clippy::cast_precision_loss)]
        (FieldKind::Float, QueryValue::Int(i)) => Some(SqlValue::Float(*i as f64)),
        (FieldKind::Boolean, QueryValue::Bool(b)) => Some(SqlValue::Bool(*b)),
        (FieldKind::DateTime, QueryValue::Time(time)) => Some(SqlValue::Time(*time)),
        (FieldKind::DateTime, QueryValue::Text(text)) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| SqlValue::Time(time.with_timezone(&Utc))),
        (FieldKind::Date, QueryValue::Date(date)) => Some(SqlValue::Date(*date)),
        (FieldKind::Date, QueryValue::Text(text)) => text.parse().ok().map(SqlValue::Date),
        #[cfg(feature = "decimal")]
        (FieldKind::Decimal, QueryValue::Decimal(d)) => Some(SqlValue::Decimal(*d)),
        _ => None,
    }
}

fn translate(
    statement: &mut Statement,
    table: &TableSchema,
    condition: &Condition,
) -> Result<String> {
    let syntax = statement.syntax;
    Ok(match condition {
        Condition::Compare {
            field: name,
            op,
            value,
        } => {
            let field = field(table, name)?;
            let Some(value) = coerce(field.kind, value) else {
                return Ok("1 = 0".to_owned());
            };
            let op = match op {
                CompareOp::Eq => "=",
                CompareOp::Ne => "<>",
                CompareOp::Lt => "<",
                CompareOp::Le => "<=",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
            };
            let placeholder = statement.param(value);
            format!("{} {op} {placeholder}", column_expr(syntax, field))
        }
        Condition::In {
            field: name,
            values,
        } => {
            let field = field(table, name)?;
            let values: Vec<SqlValue> = values
                .iter()
                .filter_map(|value| coerce(field.kind, value))
                .collect();
            if values.is_empty() {
                return Ok("1 = 0".to_owned());
            }
            let placeholders: Vec<String> = values
                .into_iter()
                .map(|value| statement.param(value))
                .collect();
            format!(
                "{} IN ({})",
                column_expr(syntax, field),
                placeholders.join(", ")
            )
        }
        Condition::IsNull {
            field: name,
            negated,
        } => {
            let field = field(table, name)?;
            format!(
                "{} IS {}NULL",
                quote(field.name),
                if *negated { "NOT " } else { "" }
            )
        }
        Condition::StartsWith {
            field: name,
            prefix,
        } => {
            let field = field(table, name)?;
            if !matches!(field.kind, FieldKind::Identifier | FieldKind::String) {
                return Ok("1 = 0".to_owned());
            }
            match syntax {
                // The prefix is matched literally: LIKE's wildcards and the escape character
                // are escaped.
                Syntax::Postgres => {
                    let pattern = format!("{}%", escape_like(prefix));
                    let placeholder = statement.param(SqlValue::Text(pattern));
                    format!(
                        "{} LIKE {placeholder} ESCAPE '\\'",
                        column_expr(syntax, field)
                    )
                }
                // SQLite's LIKE ignores ASCII case, so the prefix is compared exactly instead.
                Syntax::Sqlite => {
                    let length = statement.param(SqlValue::Int(
                        i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX),
                    ));
                    let placeholder = statement.param(SqlValue::Text(prefix.clone()));
                    format!("substr({}, 1, {length}) = {placeholder}", quote(field.name))
                }
            }
        }
    })
}

/// Escapes `\`, `%` and `_` for `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A serialization error for a stored event row, naming its stream and position.
pub(crate) fn corrupt_event(stream: &str, position: i64, message: impl Into<String>) -> Error {
    Error::Serialization {
        what: format!("stored event at stream `{stream}` global position {position}"),
        message: message.into(),
    }
}

/// The metadata column of an event: what is not a column of its own.
pub(crate) fn event_metadata(metadata: &crate::model::event::EventMetadata) -> Value {
    let mut object = serde_json::json!({
        "correlation_id": metadata.correlation_id.as_str(),
        "causation_id": metadata.causation_id.as_ref().map(|id| id.as_str()),
    });
    // Written only when they say something, so rows stay as small as before for the
    // common case, and rows of before read back the same as new default ones.
    if let Value::Object(map) = &mut object {
        if metadata.priority != crate::model::event::Priority::Normal {
            map.insert("priority".into(), metadata.priority.as_str().into());
        }
        if !metadata.extensions.is_empty() {
            map.insert(
                "extensions".into(),
                Value::Object(metadata.extensions.clone()),
            );
        }
    }
    object
}

/// Names a row in an error about one of its columns: `row \`<id>\`` when its identifier
/// column reads, so one bad row among many can be found and repaired.
pub(crate) fn row_name<R: sqlx::Row>(table: &TableSchema, row: &R) -> String
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let index = table
        .fields
        .iter()
        .position(|field| field.name == table.identifier);
    let id = index.and_then(|index| {
        row.try_get::<String, _>(index)
            .ok()
            .or_else(|| row.try_get::<i64, _>(index).ok().map(|id| id.to_string()))
    });
    id.map_or_else(|| "a row".to_owned(), |id| format!("row `{id}`"))
}

/// The raw columns of an event row, decoded into a [`RecordedEvent`](crate::model::event::RecordedEvent).
pub(crate) struct EventRow {
    pub(crate) position: i64,
    pub(crate) commit: i64,
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) version: i64,
    pub(crate) type_name: String,
    pub(crate) data: Box<serde_json::value::RawValue>,
    pub(crate) metadata: StoredMetadata,
    pub(crate) time: DateTime<Utc>,
}

/// An event row's `metadata` column (what [`event_metadata`] writes), decoded straight from
/// its text: no JSON tree is built per event read. Rows written before `priority` and
/// `extensions` existed lack them and read as the defaults.
#[derive(serde::Deserialize)]
pub(crate) struct StoredMetadata {
    correlation_id: String,
    #[serde(default)]
    causation_id: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    extensions: Option<crate::model::event::Extensions>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<crate::model::event::RecordedEvent> {
        use crate::model::identifier::Identifier;
        let StoredMetadata {
            correlation_id,
            causation_id,
            priority,
            extensions,
        } = self.metadata;
        let priority = match priority {
            None => crate::model::event::Priority::Normal,
            Some(name) => crate::model::event::Priority::parse(&name).ok_or_else(|| {
                corrupt_event(
                    &self.stream,
                    self.position,
                    format!("column `metadata` has an unknown `priority` {name:?}"),
                )
            })?,
        };
        Ok(crate::model::event::RecordedEvent {
            metadata: crate::model::event::EventMetadata {
                id: Identifier::new(self.id),
                type_name: self.type_name,
                stream: self.stream,
                version: self.version,
                global_position: self.position,
                commit: self.commit,
                time: self.time,
                correlation_id: Identifier::new(correlation_id),
                causation_id: causation_id.map(Identifier::new),
                priority,
                extensions: extensions.unwrap_or_default(),
            },
            payload: crate::model::event::Payload::Encoded(self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_row(metadata: Value) -> EventRow {
        let metadata = serde_json::from_value(metadata).unwrap();
        EventRow {
            position: 1,
            commit: 1,
            id: "e-1".into(),
            stream: "bank::account-1".into(),
            version: 0,
            type_name: "Bank.Opened.v1".into(),
            data: serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
            metadata,
            time: Utc::now(),
        }
    }

    #[test]
    fn metadata_round_trips_and_rows_of_before_read_as_defaults() {
        use crate::model::event::Priority;
        // A row written before priority and extensions existed.
        let old = event_row(serde_json::json!({"correlation_id": "c", "causation_id": null}));
        let metadata = old.into_event().unwrap().metadata;
        assert_eq!(metadata.priority, Priority::Normal);
        assert!(metadata.extensions.is_empty());
        // Defaults are not written, so new rows stay as small as before.
        assert_eq!(
            event_metadata(&metadata),
            serde_json::json!({"correlation_id": "c", "causation_id": null})
        );
        let mut bulk = metadata.clone();
        bulk.priority = Priority::Bulk;
        bulk.extensions.insert("tenant".into(), "acme".into());
        let read = event_row(event_metadata(&bulk))
            .into_event()
            .unwrap()
            .metadata;
        assert_eq!(
            (read.priority, read.extensions),
            (Priority::Bulk, bulk.extensions)
        );
        // What does not decode names the row.
        let bad = event_row(serde_json::json!({"correlation_id": "c", "priority": "urgent"}));
        let error = bad.into_event().unwrap_err().to_string();
        assert!(
            error.contains("unknown `priority`") && error.contains("bank::account-1"),
            "{error}"
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("account_summary"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("Account"));
        assert!(!is_identifier("a\"b"));
        assert!(!is_identifier(""));
    }

    #[test]
    fn postgres_unique_constraint_names() {
        assert!(is_postgres_unique_name(
            "shop_member_email_key",
            "shop_member",
            "email"
        ));
        assert!(is_postgres_unique_name(
            "shop_member_email_key1",
            "shop_member",
            "email"
        ));
        assert!(!is_postgres_unique_name(
            "shop_member_email_key",
            "shop_member",
            "mail"
        ));
        assert!(!is_postgres_unique_name(
            "shop_member_pkey",
            "shop_member",
            "id"
        ));
        // 63 bytes at most: the longer name is shortened first.
        let table = "t".repeat(60);
        let expected = format!("{}_email_key", "t".repeat(53));
        assert_eq!(expected.len(), 63);
        assert!(is_postgres_unique_name(&expected, &table, "email"));
    }

    #[test]
    fn like_escapes() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn families() {
        assert_eq!(family_of_type("character varying"), Family::Text);
        assert_eq!(family_of_type("VARCHAR(100)"), Family::Text);
        assert_eq!(family_of_type("double precision"), Family::Float);
        assert_eq!(
            family_of_type("timestamp with time zone"),
            Family::TimestampTz
        );
        assert_eq!(family_of_type("timestamp without time zone"), Family::Other);
        assert_eq!(family_of_type("jsonb"), Family::Json);
        assert_eq!(family_of_type("bigint"), Family::Integer);
        assert_eq!(family_of_type("numeric"), Family::Numeric);
        assert_eq!(family_of_type("json"), Family::Json);
        // SQLite's float columns (no affinity) are still floats to the drift check.
        assert_eq!(family_of_type("DOUBLE PRECISION BLOB"), Family::Float);
    }
}
