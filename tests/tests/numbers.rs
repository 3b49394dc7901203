//! Numbers on every storage adapter: every finite f64 reads back with the same bits (from
//! events, by replay, and from projection and state-stored aggregate rows), NaN and infinity are validation errors unless
//! a field opts in (and then round-trip too), and `Decimal` fields are exact, validated and
//! queryable.
//!
//! Each check runs on memory, SQLite (a fresh file) and PostgreSQL (a fresh schema in
//! `FIDELIS_TEST_POSTGRES_URL`; `SKIPPED: …` is printed when the variable is unset), as
//! `<check>::<adapter>`. SQL adapters read back through a second domain on the same database,
//! as another process would.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::str::FromStr;

use fidelis_core::prelude::*;
use fidelis_core::{Domain, HasFields};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod support;
use support::{Backend, ScratchSchema};

// ---- elements --------------------------------------------------------------------------

/// An event-sourced aggregate whose floats come only from its events.
#[aggregate(event_sourced)]
pub struct Gauge {
    #[field(default = 0.0)]
    pub value: f64,
    pub history: Vec<f64>,
    pub last: Option<f64>,
}

#[event(part_of = Gauge)]
pub struct Measured {
    pub gauge_id: Identifier,
    pub value: f64,
    pub history: Vec<f64>,
    pub last: Option<f64>,
}

#[event(part_of = Gauge)]
pub struct Added {
    pub gauge_id: Identifier,
    pub amount: f64,
}

#[aggregate]
impl Gauge {
    #[apply]
    fn on_measured(&mut self, event: &Measured) {
        self.value = event.value;
        self.history = event.history.clone();
        self.last = event.last;
    }

    #[apply]
    fn on_added(&mut self, event: &Added) {
        self.value += event.amount;
    }
}

/// A projection row with a DOUBLE PRECISION column, a JSON list and an optional column.
#[projection]
pub struct Reading {
    #[field(identifier)]
    pub reading_id: Identifier,
    pub value: f64,
    pub values: Vec<f64>,
    pub maybe: Option<f64>,
}

/// A state-stored aggregate: its floats live in its row's columns.
#[aggregate]
pub struct Meter {
    #[field(default = 0.0)]
    pub value: f64,
    pub values: Vec<f64>,
}

/// A value object with a float, checked like any other field.
#[value_object]
pub struct Sample {
    pub level: f64,
}

#[command(part_of = Gauge)]
pub struct Calibrate {
    pub gauge_id: Identifier,
    pub offset: f64,
}

#[derive(Default)]
pub struct GaugeHandler;

#[command_handler(part_of = Gauge)]
impl GaugeHandler {
    #[handle(Calibrate)]
    async fn calibrate(&self, command: Calibrate, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Gauge>();
        let mut gauge = repo.get(&command.gauge_id).await?;
        gauge.raise(Added {
            gauge_id: command.gauge_id,
            amount: command.offset,
        })?;
        repo.add(gauge).await
    }
}

/// Floats that opt in to NaN and infinity, in an event, an aggregate and a projection.
#[aggregate(event_sourced)]
pub struct Probe {
    #[field(allow_non_finite, default = 0.0)]
    pub level: f64,
    #[field(allow_non_finite)]
    pub peak: Option<f64>,
}

#[event(part_of = Probe)]
pub struct Probed {
    pub probe_id: Identifier,
    #[field(allow_non_finite)]
    pub level: f64,
    #[field(allow_non_finite)]
    pub peak: Option<f64>,
}

#[aggregate]
impl Probe {
    #[apply]
    fn on_probed(&mut self, event: &Probed) {
        self.level = event.level;
        self.peak = event.peak;
    }
}

#[projection]
pub struct ProbeRow {
    #[field(identifier)]
    pub row_id: Identifier,
    #[field(allow_non_finite)]
    pub level: f64,
    #[field(allow_non_finite)]
    pub peak: Option<f64>,
}

/// Money: exact decimals with bounds and places.
#[projection]
pub struct Price {
    #[field(identifier)]
    pub price_id: String,
    #[field(min_value = 0.01, max_value = 1000000, decimal_places = 2)]
    pub amount: Decimal,
    pub discount: Option<Decimal>,
}

#[aggregate(event_sourced)]
pub struct Till {
    #[field(default = Decimal::ZERO)]
    pub total: Decimal,
}

#[event(part_of = Till)]
pub struct Rung {
    pub till_id: Identifier,
    #[field(max_value = 0.3)]
    pub amount: Decimal,
}

#[aggregate]
impl Till {
    #[apply]
    fn on_rung(&mut self, event: &Rung) {
        self.total += event.amount;
    }
}

// ---- adapters --------------------------------------------------------------------------

async fn numbers_domain(backend: &Backend) -> Domain {
    backend
        .build(Domain::builder("numbers").discover_crate("numbers"))
        .await
}

/// The domain that writes, and a second one on the same database that reads (another
/// process; on memory, one sharing the store).
async fn writer_and_reader(backend: &Backend) -> (Domain, Domain) {
    (numbers_domain(backend).await, numbers_domain(backend).await)
}

/// `$check(&Backend)` as `$check::memory`, `::sqlite` and `::postgres`, each in a runtime of
/// its own (property checks drive it with `block_on` from inside the proptest runner).
macro_rules! on_every_adapter {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[test]
            fn memory() {
                run(Backend::memory(), super::$check);
            }
            #[test]
            fn sqlite() {
                run(Backend::sqlite(), super::$check);
            }
            #[cfg_attr(not(fidelis_postgres), ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests")]
            #[test]
            fn postgres() {
                run(
                    async {
                        ScratchSchema::create(concat!(stringify!($check), "::postgres"))
                            .await
                            .map(Backend::Postgres)
                    },
                    super::$check,
                );
            }
        }
    )*};
}

fn run(
    backend: impl Future<Output = Option<Backend>>,
    check: fn(&tokio::runtime::Runtime, &Backend),
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(backend) = runtime.block_on(backend) else {
        return;
    };
    check(&runtime, &backend);
    runtime.block_on(backend.finish());
}

on_every_adapter!(
    floats_round_trip_bit_exact,
    extreme_floats_round_trip_bit_exact,
    non_finite_round_trips_where_allowed,
    decimals_are_exact_and_queryable,
);

// ---- f64 round trip ----------------------------------------------------------------------

/// The values every run includes: the extremes, both zeros, subnormals, and values whose
/// shortest decimal form is long.
const EXTREMES: [f64; 14] = [
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    5e-324,
    -5e-324,
    2.225_073_858_507_201e-308,
    -0.0,
    0.0,
    f64::EPSILON,
    0.1,
    1.0 / 3.0,
    -2.3e-10,
    9_007_199_254_740_993.0,
];

/// Any finite f64: uniformly over bit patterns (every exponent), and as ordinary magnitudes.
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |value| value.is_finite()),
        proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL
            | proptest::num::f64::ZERO
            | proptest::num::f64::POSITIVE
            | proptest::num::f64::NEGATIVE,
        proptest::sample::select(EXTREMES.to_vec()),
    ]
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// Writes the values through a gauge's event and a projection row, then reads both back
/// (replay and row) through the reader, bit for bit.
async fn round_trip(writer: &Domain, reader: &Domain, values: &[f64]) -> Result<()> {
    let (first, rest) = values.split_first().expect("at least one value");
    let last = rest.last().copied();
    let mut gauge = Gauge::create_new();
    let gauge_id = gauge.id.clone();
    gauge.raise(Measured {
        gauge_id: gauge_id.clone(),
        value: *first,
        history: rest.to_vec(),
        last,
    })?;
    writer.repository::<Gauge>().add(gauge).await?;
    let reading_id = Identifier::generate();
    writer
        .repository::<Reading>()
        .add(Reading {
            reading_id: reading_id.clone(),
            value: *first,
            values: rest.to_vec(),
            maybe: last,
        })
        .await?;

    let mut meter = Meter::create_new();
    meter.value = *first;
    meter.values = rest.to_vec();
    let meter_id = meter.id.clone();
    writer.repository::<Meter>().add(meter).await?;

    let stored = reader.repository::<Meter>().get(&meter_id).await?;
    assert_eq!(
        stored.value.to_bits(),
        first.to_bits(),
        "stored aggregate column"
    );
    assert_eq!(
        bits(&stored.values),
        bits(rest),
        "stored aggregate JSON column"
    );
    let replayed = reader.repository::<Gauge>().get(&gauge_id).await?;
    assert_eq!(replayed.value.to_bits(), first.to_bits(), "replayed value");
    assert_eq!(bits(&replayed.history), bits(rest), "replayed list");
    assert_eq!(replayed.last.map(f64::to_bits), last.map(f64::to_bits));
    let row = reader.repository::<Reading>().get(&reading_id).await?;
    assert_eq!(row.value.to_bits(), first.to_bits(), "column value");
    assert_eq!(bits(&row.values), bits(rest), "JSON column");
    assert_eq!(row.maybe.map(f64::to_bits), last.map(f64::to_bits));
    Ok(())
}

fn floats_round_trip_bit_exact(runtime: &tokio::runtime::Runtime, backend: &Backend) {
    let (writer, reader) = runtime.block_on(writer_and_reader(backend));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(finite(), 1..12), |values| {
            runtime
                .block_on(round_trip(&writer, &reader, &values))
                .map_err(|e| TestCaseError::fail(e.to_string()))
        })
        .unwrap();
}

fn extreme_floats_round_trip_bit_exact(runtime: &tokio::runtime::Runtime, backend: &Backend) {
    let (writer, reader) = runtime.block_on(writer_and_reader(backend));
    // Each extreme alone (in the column and in the event), then all of them in the lists.
    for value in EXTREMES {
        runtime
            .block_on(round_trip(&writer, &reader, &[value, value]))
            .unwrap_or_else(|e| panic!("{value:e}: {e}"));
    }
    let mut all = vec![1.0];
    all.extend(EXTREMES);
    runtime
        .block_on(round_trip(&writer, &reader, &all))
        .unwrap();
    // Every event still reads, f64::MAX included (PostgreSQL's JSONB wrote it out in full).
    let events = runtime
        .block_on(reader.event_store().read_all(fidelis_core::Cursor::START))
        .unwrap();
    assert!(events.len() > EXTREMES.len());
}

// ---- non-finite numbers ----------------------------------------------------------------

fn messages(result: std::result::Result<(), ValidationError>, field: &str) -> Vec<String> {
    result.expect_err("invalid").messages_for(field).to_vec()
}

#[test]
fn non_finite_floats_fail_validation_everywhere() {
    let finite = "add `#[field(allow_non_finite)]` to accept NaN and infinity";
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let id = Identifier::generate();
        let expected = [format!("must be a finite number, not {value} ({finite})")];
        let event = Measured {
            gauge_id: id.clone(),
            value,
            history: vec![],
            last: None,
        };
        assert_eq!(messages(event.validate(), "value"), expected);
        // List items and optional values are checked too.
        let listed = Measured {
            gauge_id: id.clone(),
            value: 1.0,
            history: vec![1.0, value],
            last: Some(value),
        };
        let errors = listed.validate().expect_err("invalid");
        assert_eq!(errors.messages_for("history.1"), expected);
        assert_eq!(errors.messages_for("last"), expected);
        let command = Calibrate {
            gauge_id: id.clone(),
            offset: value,
        };
        assert_eq!(messages(command.validate(), "offset"), expected);
        let row = Reading {
            reading_id: id.clone(),
            value,
            values: vec![],
            maybe: None,
        };
        assert_eq!(messages(row.validate(), "value"), expected);
        assert_eq!(
            messages(Sample { level: value }.validate(), "level"),
            expected
        );
        let mut gauge = Gauge::create_new();
        gauge.value = value;
        assert_eq!(messages(gauge.validate(), "value"), expected);
    }
    // From JSON, too: serde_json reads `1e999` as infinity.
    let error = Calibrate::from_json(r#"{"gauge_id": "g", "offset": 1e999}"#);
    assert!(error.is_err(), "{error:?}");
}

#[test]
fn overflow_in_apply_is_caught_before_commit() {
    let mut gauge = Gauge::create_new();
    let id = gauge.id.clone();
    let add = |amount| Added {
        gauge_id: id.clone(),
        amount,
    };
    gauge.raise(add(f64::MAX)).unwrap();
    let error = gauge
        .raise(add(f64::MAX))
        .expect_err("MAX + MAX is infinite");
    let Error::Invariant { errors, .. } = &error else {
        panic!("expected the aggregate's field validation to refuse, got {error:?}");
    };
    assert_eq!(
        errors.messages_for("value"),
        [
            "must be a finite number, not inf (add `#[field(allow_non_finite)]` to accept NaN and infinity)"
        ]
    );
    // The aggregate is as it was before the refused event.
    assert_eq!(gauge.value, f64::MAX);
}

#[test]
fn allow_non_finite_accepts_and_decodes_by_name() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let event = Probed {
            probe_id: Identifier::generate(),
            level: value,
            peak: Some(value),
        };
        event.validate().unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["level"], serde_json::Value::String(value.to_string()));
        let back = Probed::from_value(json).unwrap();
        assert_eq!(back.level.to_bits(), value.to_bits());
        assert_eq!(back.peak.map(f64::to_bits), Some(value.to_bits()));
    }
    let none = Probed::from_json(r#"{"probe_id": "p", "level": 2.5, "peak": null}"#).unwrap();
    assert_eq!((none.level, none.peak), (2.5, None));
    assert!(Probed::from_json(r#"{"probe_id": "p", "level": "lots"}"#).is_err());
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn non_finite_round_trips_where_allowed(runtime: &tokio::runtime::Runtime, backend: &Backend) {
    let (writer, reader) = runtime.block_on(writer_and_reader(backend));
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1.5] {
        runtime.block_on(async {
            let mut probe = Probe::create_new();
            let id = probe.id.clone();
            probe
                .raise(Probed {
                    probe_id: id.clone(),
                    level: value,
                    peak: Some(value),
                })
                .unwrap();
            writer.repository::<Probe>().add(probe).await.unwrap();
            writer
                .repository::<ProbeRow>()
                .add(ProbeRow {
                    row_id: id.clone(),
                    level: value,
                    peak: Some(value),
                })
                .await
                .unwrap();
            let replayed = reader.repository::<Probe>().get(&id).await.unwrap();
            assert!(same(replayed.level, value), "{value}: {}", replayed.level);
            assert!(replayed.peak.is_some_and(|peak| same(peak, value)));
            let row = reader.repository::<ProbeRow>().get(&id).await.unwrap();
            assert!(same(row.level, value), "{value}: {}", row.level);
            assert!(row.peak.is_some_and(|peak| same(peak, value)));
        });
    }
}

// ---- Decimal ----------------------------------------------------------------------------

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

#[test]
fn decimal_validation_is_exact() {
    let price = |amount: &str| Price {
        price_id: "p".into(),
        amount: dec(amount),
        discount: None,
    };
    price("0.01").validate().unwrap();
    price("1000000.00").validate().unwrap();
    // Trailing zeros are not decimal places.
    price("12.500").validate().unwrap();
    assert_eq!(
        messages(price("0.009").validate(), "amount"),
        [
            "is too small (min 0.01)",
            "has too many decimal places (max 2)"
        ]
    );
    assert_eq!(
        messages(price("1000000.01").validate(), "amount"),
        ["is too large (max 1000000)"]
    );
    // 0.1 + 0.2 is 0.3 exactly, within `max_value = 0.3` (as f64 it is 0.30000000000000004).
    let rung = Rung {
        till_id: Identifier::generate(),
        amount: dec("0.1") + dec("0.2"),
    };
    rung.validate().unwrap();
    let over = Rung {
        till_id: Identifier::generate(),
        amount: dec("0.3000000000000000000000000001"),
    };
    assert_eq!(
        messages(over.validate(), "amount"),
        ["is too large (max 0.3)"]
    );
    // In JSON a decimal is a string; a JSON number is refused rather than read through f64.
    let json = serde_json::to_value(&rung).unwrap();
    assert_eq!(json["amount"], serde_json::json!("0.3"));
    assert!(Rung::from_json(r#"{"till_id": "t", "amount": 0.1}"#).is_err());
    assert_eq!(
        Rung::from_json(r#"{"till_id": "t", "amount": "0.10"}"#)
            .unwrap()
            .amount
            .to_string(),
        "0.10"
    );
}

fn decimals_are_exact_and_queryable(runtime: &tokio::runtime::Runtime, backend: &Backend) {
    let (writer, reader) = runtime.block_on(writer_and_reader(backend));
    runtime.block_on(async {
        // Replay is exact: ten times 0.1 is 1.0, not 0.9999999999999999.
        let mut till = Till::create_new();
        let id = till.id.clone();
        for _ in 0..10 {
            till.raise(Rung {
                till_id: id.clone(),
                amount: dec("0.1"),
            })
            .unwrap();
        }
        writer.repository::<Till>().add(till).await.unwrap();
        let replayed = reader.repository::<Till>().get(&id).await.unwrap();
        assert_eq!(replayed.total.to_string(), "1.0");

        let rows = [
            ("a", "9.50", None),
            ("b", "10", Some("0.5")),
            ("c", "1500.00", None),
            ("d", "0.01", Some("-0.25")),
            ("e", "10.00", Some("12345678901234567890.12345678")),
            ("f", "999999.99", None),
        ];
        for (id, amount, discount) in rows {
            writer
                .repository::<Price>()
                .add(Price {
                    price_id: id.into(),
                    amount: dec(amount),
                    discount: discount.map(dec),
                })
                .await
                .unwrap();
        }
        let repo = reader.repository::<Price>();
        // The text reads back as written, scale included.
        for (id, amount, discount) in rows {
            let row = repo.get(id).await.unwrap();
            assert_eq!(row.amount.to_string(), amount, "{id}");
            assert_eq!(row.discount.map(|d| d.to_string()).as_deref(), discount);
        }
        let f = Price::fields();
        assert_eq!(
            by_amount(repo.query()).await,
            ["d", "a", "b", "e", "c", "f"],
            "ordered by value, not by text"
        );
        assert_eq!(
            ids(repo
                .query()
                .order_by(f.amount.desc())
                .order_by(f.price_id.asc())
                .all()
                .await
                .unwrap()),
            ["f", "c", "b", "e", "a", "d"]
        );
        // `10` and `10.00` are equal.
        assert_eq!(
            by_amount(repo.query().filter(f.amount.eq(dec("10")))).await,
            ["b", "e"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.amount.ne(dec("10.0")))).await,
            ["d", "a", "c", "f"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.amount.lt(dec("10")))).await,
            ["d", "a"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.amount.le(dec("10")))).await,
            ["d", "a", "b", "e"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.amount.gt(dec("9.5")))).await,
            ["b", "e", "c", "f"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.amount.ge(dec("1500")))).await,
            ["c", "f"]
        );
        assert_eq!(
            by_amount(
                repo.query()
                    .filter(f.amount.is_in([dec("0.010"), dec("1500")]))
            )
            .await,
            ["d", "c"]
        );
        assert_eq!(
            by_amount(repo.query().filter(f.discount.lt(Some(dec("0.5"))))).await,
            ["d"]
        );
        assert_eq!(
            ids(repo
                .query()
                .order_by(f.discount.desc())
                .order_by(f.price_id.asc())
                .all()
                .await
                .unwrap()),
            ["e", "b", "d", "a", "c", "f"],
            "missing values last"
        );
        assert_eq!(
            repo.query()
                .filter(f.amount.gt(dec("9.99")))
                .count()
                .await
                .unwrap(),
            4
        );
    });
}

fn ids(rows: Vec<Price>) -> Vec<String> {
    rows.into_iter().map(|row| row.price_id).collect()
}

/// The ids of the matching rows, by amount (then id).
async fn by_amount(query: fidelis_core::Query<'_, Price>) -> Vec<String> {
    let f = Price::fields();
    let rows = query
        .order_by(f.amount.asc())
        .order_by(f.price_id.asc())
        .all()
        .await
        .unwrap();
    ids(rows)
}
