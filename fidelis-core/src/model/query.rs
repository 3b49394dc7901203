//! Typed queries on projections and state-stored aggregates.
//!
//! The macros give every document element a `fields()` function returning one
//! [`FieldHandle`] per field, so filters are checked by the compiler:
//!
//! ```rust,standalone_crate
//! use fidelis_core::prelude::*;
//!
//! #[projection]
//! pub struct AccountSummary {
//!     #[field(identifier)]
//!     pub account_id: Identifier,
//!     pub account_number: String,
//!     pub balance: Decimal,
//! }
//! # #[tokio::main]
//! # async fn main() -> Result<()> {
//! # let domain = Domain::builder("bank").discover_crate(module_path!()).build().await?;
//! # let rows = domain.repository::<AccountSummary>();
//! # for (number, balance) in [("ACC-1", 500), ("ACC-2", 1_500), ("XYZ-3", 2_500)] {
//! #     rows.add(AccountSummary { account_id: Identifier::generate(), account_number: number.into(), balance: balance.into() }).await?;
//! # }
//!
//! let f = AccountSummary::fields();
//! let rich = domain
//!     .repository::<AccountSummary>()
//!     .query()
//!     .filter(f.balance.ge(Decimal::from(1_000)))
//!     .filter(f.account_number.starts_with("ACC-"))
//!     .order_by(f.balance.desc())
//!     .limit(10)
//!     .all()
//!     .await?;
//! assert_eq!(rich.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Adapters receive the untyped [`QuerySpec`] and translate it (the SQL adapters into
//! parameterized statements: values are never spliced into SQL text).

use std::cmp::Ordering;
use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::model::identifier::Identifier;

/// A value in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text (strings and identifiers).
    Text(String),
    /// A point in time.
    Time(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
    /// An exact decimal (the `decimal` feature).
    #[cfg(feature = "decimal")]
    Decimal(rust_decimal::Decimal),
}

/// Converts a Rust value into a [`QueryValue`].
pub trait IntoQueryValue {
    /// The value for a filter.
    fn into_query_value(self) -> QueryValue;
}

macro_rules! query_value {
    ($($ty:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl IntoQueryValue for $ty {
            fn into_query_value(self) -> QueryValue { let $v = self; $e }
        }
    )*};
}
query_value! {
    bool => |v| QueryValue::Bool(v),
    i32 => |v| QueryValue::Int(i64::from(v)),
    i64 => |v| QueryValue::Int(v),
    u32 => |v| QueryValue::Int(i64::from(v)),
    f64 => |v| QueryValue::Float(v),
    String => |v| QueryValue::Text(v),
    Identifier => |v| QueryValue::Text(v.into_string()),
    DateTime<Utc> => |v| QueryValue::Time(v),
    NaiveDate => |v| QueryValue::Date(v),
}

#[cfg(feature = "decimal")]
impl IntoQueryValue for rust_decimal::Decimal {
    fn into_query_value(self) -> QueryValue {
        QueryValue::Decimal(self)
    }
}

impl<T: IntoQueryValue> IntoQueryValue for Option<T> {
    fn into_query_value(self) -> QueryValue {
        self.map_or(QueryValue::Null, IntoQueryValue::into_query_value)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One filter condition. Comparisons never match a missing (null) value, as in SQL.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// `field <op> value`
    Compare {
        /// The field.
        field: &'static str,
        /// The operator.
        op: CompareOp,
        /// The value compared with.
        value: QueryValue,
    },
    /// `field IN (values)`
    In {
        /// The field.
        field: &'static str,
        /// The accepted values.
        values: Vec<QueryValue>,
    },
    /// `field IS NULL` (or `IS NOT NULL` when negated).
    IsNull {
        /// The field.
        field: &'static str,
        /// `IS NOT NULL` instead.
        negated: bool,
    },
    /// `field LIKE 'prefix%'`, the prefix matched literally.
    StartsWith {
        /// The field.
        field: &'static str,
        /// The prefix.
        prefix: String,
    },
}

/// A sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// The field.
    pub field: &'static str,
    /// Largest first.
    pub descending: bool,
}

/// An untyped query, as adapters receive it: every filter must hold (AND).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuerySpec {
    /// Conditions, all of which must hold.
    pub filters: Vec<Condition>,
    /// Sort keys, most significant first; rows with a missing value sort last.
    pub order: Vec<Order>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Skip this many rows first.
    pub offset: usize,
}

/// A typed filter on the fields of `T`.
#[derive(Clone, Debug)]
pub struct Filter<T> {
    pub(crate) condition: Condition,
    _element: PhantomData<fn() -> T>,
}

impl<T> Filter<T> {
    fn new(condition: Condition) -> Self {
        Self {
            condition,
            _element: PhantomData,
        }
    }

    /// The untyped condition.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }
}

/// A typed sort key on the fields of `T`.
#[derive(Clone, Copy, Debug)]
pub struct OrderBy<T> {
    pub(crate) order: Order,
    _element: PhantomData<fn() -> T>,
}

/// A field of element `T` holding values of type `V`, to build filters and sort keys.
pub struct FieldHandle<T, V> {
    name: &'static str,
    _types: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Clone for FieldHandle<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, V> Copy for FieldHandle<T, V> {}

impl<T, V> std::fmt::Debug for FieldHandle<T, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldHandle({})", self.name)
    }
}

impl<T, V> FieldHandle<T, V> {
    /// A handle on the field `name` (the macros make these).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _types: PhantomData,
        }
    }

    /// The field's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `field IS NULL`
    pub fn is_null(self) -> Filter<T> {
        Filter::new(Condition::IsNull {
            field: self.name,
            negated: false,
        })
    }
    /// `field IS NOT NULL`
    pub fn is_not_null(self) -> Filter<T> {
        Filter::new(Condition::IsNull {
            field: self.name,
            negated: true,
        })
    }
    /// Smallest first.
    pub fn asc(self) -> OrderBy<T> {
        OrderBy {
            order: Order {
                field: self.name,
                descending: false,
            },
            _element: PhantomData,
        }
    }
    /// Largest first.
    pub fn desc(self) -> OrderBy<T> {
        OrderBy {
            order: Order {
                field: self.name,
                descending: true,
            },
            _element: PhantomData,
        }
    }
}

/// Comparisons, for fields whose values have a query value (not lists or JSON).
impl<T, V: IntoQueryValue> FieldHandle<T, V> {
    fn compare(self, op: CompareOp, value: impl Into<V>) -> Filter<T> {
        match value.into().into_query_value() {
            QueryValue::Null => Filter::new(Condition::IsNull {
                field: self.name,
                negated: op == CompareOp::Ne,
            }),
            value => Filter::new(Condition::Compare {
                field: self.name,
                op,
                value,
            }),
        }
    }

    /// `field = value` (`= None` means `IS NULL`).
    pub fn eq(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Eq, value)
    }
    /// `field <> value` (`<> None` means `IS NOT NULL`).
    pub fn ne(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Ne, value)
    }
    /// `field < value`
    pub fn lt(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Lt, value)
    }
    /// `field <= value`
    pub fn le(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Le, value)
    }
    /// `field > value`
    pub fn gt(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Gt, value)
    }
    /// `field >= value`
    pub fn ge(self, value: impl Into<V>) -> Filter<T> {
        self.compare(CompareOp::Ge, value)
    }
    /// `field IN (values)`
    pub fn is_in<I: Into<V>>(self, values: impl IntoIterator<Item = I>) -> Filter<T> {
        let values = values
            .into_iter()
            .map(|value| value.into().into_query_value())
            .collect();
        Filter::new(Condition::In {
            field: self.name,
            values,
        })
    }
}

/// Text fields: prefix search.
pub trait TextHandle<T> {
    /// `field` starts with `prefix` (matched literally, no wildcards).
    fn starts_with(self, prefix: impl Into<String>) -> Filter<T>;
}

macro_rules! text_handle {
    ($($ty:ty),*) => {$(
        impl<T> TextHandle<T> for FieldHandle<T, $ty> {
            fn starts_with(self, prefix: impl Into<String>) -> Filter<T> {
                Filter::new(Condition::StartsWith { field: self.name, prefix: prefix.into() })
            }
        }
    )*};
}
text_handle!(String, Option<String>, Identifier, Option<Identifier>);

/// Evaluates queries on JSON rows: the memory adapter's query engine.
pub(crate) mod eval {
    use super::*;

    use crate::model::field::{FieldDef, FieldKind};

    /// Whether a row satisfies every filter of the query.
    pub fn matches(row: &Map<String, Value>, query: &QuerySpec) -> bool {
        query.filters.iter().all(|condition| holds(row, condition))
    }

    fn holds(row: &Map<String, Value>, condition: &Condition) -> bool {
        match condition {
            Condition::Compare { field, op, value } => {
                let Some(ordering) = row.get(*field).and_then(|stored| compare(stored, value))
                else {
                    return false;
                };
                match op {
                    CompareOp::Eq => ordering == Ordering::Equal,
                    CompareOp::Ne => ordering != Ordering::Equal,
                    CompareOp::Lt => ordering == Ordering::Less,
                    CompareOp::Le => ordering != Ordering::Greater,
                    CompareOp::Gt => ordering == Ordering::Greater,
                    CompareOp::Ge => ordering != Ordering::Less,
                }
            }
            Condition::In { field, values } => row.get(*field).is_some_and(|stored| {
                values
                    .iter()
                    .any(|value| compare(stored, value) == Some(Ordering::Equal))
            }),
            Condition::IsNull { field, negated } => {
                let null = row.get(*field).is_none_or(Value::is_null);
                null != *negated
            }
            Condition::StartsWith { field, prefix } => row
                .get(*field)
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with(prefix.as_str())),
        }
    }

    /// Compares a stored JSON value with a query value; `None` when either is null or the
    /// kinds differ (such rows never match, as in SQL).
    pub fn compare(stored: &Value, value: &QueryValue) -> Option<Ordering> {
        match value {
            QueryValue::Null => None,
            QueryValue::Bool(b) => stored.as_bool().map(|s| s.cmp(b)),
            QueryValue::Int(i) => match stored.as_i64() {
                Some(s) => Some(s.cmp(i)),
                None => stored.as_f64().and_then(|s| s.partial_cmp(&(*i as f64))),
            },
            QueryValue::Float(f) => stored.as_f64().and_then(|s| s.partial_cmp(f)),
            QueryValue::Text(t) => stored.as_str().map(|s| s.cmp(t.as_str())),
            QueryValue::Time(t) => stored
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|s| s.with_timezone(&Utc).cmp(t)),
            QueryValue::Date(d) => stored
                .as_str()
                .and_then(|s| s.parse::<NaiveDate>().ok())
                .map(|s| s.cmp(d)),
            // Decimals are stored as their exact text (`"1500.00"`), compared by value.
            #[cfg(feature = "decimal")]
            QueryValue::Decimal(d) => stored
                .as_str()
                .and_then(|s| s.parse::<rust_decimal::Decimal>().ok())
                .map(|s| s.cmp(d)),
        }
    }

    /// Orders two rows by the query's sort keys (missing values last), knowing the table's
    /// fields: decimal fields, stored as text, are ordered by value (`"9.5"` before `"10"`).
    pub fn order_with_fields(
        a: &Map<String, Value>,
        b: &Map<String, Value>,
        query: &QuerySpec,
        fields: &[FieldDef],
    ) -> Ordering {
        for key in &query.order {
            let decimal = fields
                .iter()
                .any(|field| field.name == key.field && field.kind == FieldKind::Decimal);
            let ordering =
                compare_stored(a.get(key.field), b.get(key.field), key.descending, decimal);
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    fn compare_stored(
        a: Option<&Value>,
        b: Option<&Value>,
        descending: bool,
        decimal: bool,
    ) -> Ordering {
        let a = a.filter(|v| !v.is_null());
        let b = b.filter(|v| !v.is_null());
        let ordering = match (a, b) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(a), Some(b)) => match (a, b) {
                (Value::String(x), Value::String(y)) if decimal => compare_decimal_text(x, y),
                (Value::Number(x), Value::Number(y)) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(Ordering::Equal),
                (Value::String(x), Value::String(y)) => match (
                    DateTime::parse_from_rfc3339(x),
                    DateTime::parse_from_rfc3339(y),
                ) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                },
                (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                _ => Ordering::Equal,
            },
        };
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

/// Two decimals' texts compared by value; text that is not a decimal sorts after every
/// decimal, by text (SQLite's `fidelis_decimal` collation, and the memory adapter's order).
pub(crate) fn compare_decimal_text(a: &str, b: &str) -> Ordering {
    #[cfg(feature = "decimal")]
    {
        match (
            a.parse::<rust_decimal::Decimal>(),
            b.parse::<rust_decimal::Decimal>(),
        ) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }
    #[cfg(not(feature = "decimal"))]
    {
        a.cmp(b)
    }
}
