//! Every element and field option: static field definitions, validation failures (all
//! failing fields in one error), defaults, untrusted JSON, value objects, stored aggregates.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_core::{FieldKind, HasFields};

/// An embedded value.
#[value_object]
pub struct Money {
    #[field(min_value = 0.0)]
    pub amount: f64,
    #[field(min_length = 3, max_length = 3)]
    pub currency: String,
}

/// A state-stored aggregate using every field option.
#[aggregate]
pub struct Customer {
    #[field(min_length = 2, max_length = 10)]
    pub name: String,
    #[field(min_value = 18, max_value = 130)]
    pub age: i64,
    #[field(choices = ["GOLD", "SILVER"], default = "SILVER")]
    pub tier: String,
    pub nickname: Option<String>,
    pub credit: Money,
    #[field(max_length = 3)]
    pub tags: Vec<String>,
    #[field(unique)]
    pub email: String,
    pub born: Option<NaiveDate>,
    pub active: bool,
}

#[aggregate]
impl Customer {
    #[invariant(pre)]
    fn gold_customers_are_frozen(&self) -> Result<(), ValidationError> {
        if self.name == "Frozen" {
            return Err(ValidationError::field("name", "is frozen"));
        }
        Ok(())
    }

    #[invariant(post)]
    fn gold_needs_credit(&self) -> Result<(), ValidationError> {
        if self.tier == "GOLD" && self.credit.amount < 1000.0 {
            return Err(ValidationError::field(
                "tier",
                "GOLD needs a credit of 1000",
            ));
        }
        Ok(())
    }
}

#[event(part_of = Customer, version = 2)]
pub struct CustomerRegistered {
    pub customer_id: Identifier,
    pub name: String,
}

#[event(part_of = Customer, type_name = "Crm.Upgraded")]
pub struct CustomerUpgraded {
    #[field(identifier)]
    pub who: Identifier,
}

#[command(part_of = Customer)]
pub struct RegisterCustomer {
    #[field(min_length = 2, max_length = 10)]
    pub name: String,
    #[field(min_value = 18, max_value = 130)]
    pub age: i64,
    #[field(choices = ["GOLD", "SILVER"], default = "SILVER")]
    pub tier: String,
    pub nickname: Option<String>,
    pub email: String,
    pub credit: Money,
}

#[derive(Default)]
pub struct CustomerHandler;

#[command_handler(part_of = Customer)]
impl CustomerHandler {
    #[handle(RegisterCustomer)]
    async fn register(&self, command: RegisterCustomer, ctx: &mut Context) -> Result<Identifier> {
        let mut customer = Customer::create_new();
        customer.name = command.name;
        customer.age = command.age;
        customer.tier = command.tier;
        customer.nickname = command.nickname;
        customer.email = command.email;
        customer.credit = command.credit;
        let id = customer.id.clone();
        customer.raise(CustomerRegistered {
            customer_id: id.clone(),
            name: customer.name.clone(),
        })?;
        ctx.repository::<Customer>().add(customer).await?;
        Ok(id)
    }
}

fn money(amount: f64) -> Money {
    Money {
        amount,
        currency: "EUR".into(),
    }
}

fn valid_command() -> RegisterCustomer {
    RegisterCustomer {
        name: "Ada".into(),
        age: 36,
        tier: "GOLD".into(),
        nickname: None,
        email: "ada@example.com".into(),
        credit: money(5000.0),
    }
}

async fn domain() -> Domain {
    Domain::builder("crm")
        .discover_crate("elements")
        .build()
        .await
        .expect("the test domain is whole")
}

#[test]
fn field_definitions_are_static_data() {
    let fields = Customer::FIELDS;
    let names: Vec<_> = fields.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "id", "name", "age", "tier", "nickname", "credit", "tags", "email", "born", "active"
        ]
    );
    let by_name = |name: &str| fields.iter().find(|f| f.name == name).unwrap();
    assert!(by_name("id").identifier);
    assert_eq!(by_name("id").kind, FieldKind::Identifier);
    assert_eq!(
        (by_name("name").min_length, by_name("name").max_length),
        (Some(2), Some(10))
    );
    assert_eq!(
        (by_name("age").min_value, by_name("age").max_value),
        (Some(18.0), Some(130.0))
    );
    assert_eq!(by_name("age").kind, FieldKind::Integer);
    assert_eq!(by_name("tier").choices, ["GOLD", "SILVER"]);
    assert!(by_name("tier").has_default);
    assert!(!by_name("nickname").required);
    assert!(by_name("name").required);
    assert_eq!(by_name("credit").kind, FieldKind::Embedded);
    assert_eq!(
        by_name("credit").embedded.map(|fields| fields().len()),
        Some(2)
    );
    assert_eq!(by_name("tags").kind, FieldKind::List);
    assert!(by_name("email").unique);
    assert_eq!(by_name("born").kind, FieldKind::Date);
    assert_eq!(by_name("active").kind, FieldKind::Boolean);
}

#[test]
fn create_new_gives_an_id_and_defaults() {
    let customer = Customer::create_new();
    assert!(!customer.id.is_blank());
    assert_eq!(customer.tier, "SILVER");
    assert_eq!(customer.age, 0);
    assert_eq!(customer.version(), -1);
    assert_ne!(Customer::create_new().id, customer.id);
}

#[test]
fn every_failing_field_is_reported_at_once() {
    let command = RegisterCustomer {
        name: "A".into(),
        age: 12,
        tier: "PLATINUM".into(),
        nickname: Some("".into()),
        email: "   ".into(),
        credit: Money {
            amount: -1.0,
            currency: "EURO".into(),
        },
    };
    let errors = command.validate().unwrap_err();
    assert_eq!(errors.messages_for("name"), ["is too short (min 2)"]);
    assert_eq!(errors.messages_for("age"), ["is too small (min 18)"]);
    assert_eq!(
        errors.messages_for("tier"),
        ["must be one of [\"GOLD\", \"SILVER\"]"]
    );
    assert_eq!(errors.messages_for("email"), ["is required"]);
    assert_eq!(
        errors.messages_for("credit.amount"),
        ["is too small (min 0)"]
    );
    assert_eq!(
        errors.messages_for("credit.currency"),
        ["is too long (max 3)"]
    );
    assert!(
        errors.messages_for("nickname").is_empty(),
        "an optional blank string is allowed"
    );
    assert_eq!(errors.len(), 6);

    let long = RegisterCustomer {
        name: "A very long name".into(),
        age: 200,
        ..valid_command()
    };
    let errors = long.validate().unwrap_err();
    assert_eq!(errors.messages_for("name"), ["is too long (max 10)"]);
    assert_eq!(errors.messages_for("age"), ["is too large (max 130)"]);
    assert!(valid_command().validate().is_ok());
}

#[test]
fn untrusted_json_reports_missing_mistyped_and_invalid_fields_together() {
    let error = RegisterCustomer::from_json(
        r#"{"name": "A", "age": "old", "credit": {"amount": 5, "currency": "EUR"}, "colour": "red"}"#,
    )
    .unwrap_err();
    let errors = error.as_validation().unwrap();
    assert_eq!(errors.messages_for("email"), ["is required"]);
    assert_eq!(errors.messages_for("age").len(), 1);
    assert!(errors.messages_for("age")[0].starts_with("has the wrong type (a string)"));
    assert_eq!(
        errors.messages_for("colour"),
        ["is not a field of this element"]
    );
    assert!(errors.messages_for("tier").is_empty(), "tier has a default");
    assert!(
        errors.messages_for("nickname").is_empty(),
        "nickname is optional"
    );

    let error = RegisterCustomer::from_json(
        r#"{"name": "A", "age": 40, "email": "a@b.c", "credit": {"amount": 5, "currency": "EUR"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        error.as_validation().unwrap().messages_for("name"),
        ["is too short (min 2)"]
    );

    let command = RegisterCustomer::from_json(
        r#"{"name": "Ada", "age": 40, "email": "a@b.c", "credit": {"amount": 5, "currency": "EUR"}}"#,
    )
    .unwrap();
    assert_eq!(command.tier, "SILVER");
    assert_eq!(command.nickname, None);

    let event = CustomerRegistered::from_value(serde_json::json!({"name": "Ada"})).unwrap_err();
    assert_eq!(
        event.as_validation().unwrap().messages_for("customer_id"),
        ["is required"]
    );
    assert!(RegisterCustomer::from_json("[1, 2]").is_err());
}

#[test]
fn value_objects_compare_by_value() {
    assert_eq!(money(1.0), money(1.0));
    assert_ne!(money(1.0), money(2.0));
    assert!(
        Money {
            amount: 1.0,
            currency: "E".into()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn events_know_their_aggregate_id_and_version() {
    let id = Identifier::generate();
    let registered = CustomerRegistered {
        customer_id: id.clone(),
        name: "Ada".into(),
    };
    assert_eq!(registered.aggregate_id(), Some(&id));
    assert_eq!(
        CustomerUpgraded { who: id.clone() }.aggregate_id(),
        Some(&id)
    );
    assert_eq!(<CustomerRegistered as DomainEvent>::VERSION, 2);
}

#[test]
fn raise_runs_invariants_and_leaves_the_aggregate_unchanged_on_failure() {
    let mut customer = Customer::create_new();
    customer.name = "Frozen".into();
    let error = customer
        .raise(CustomerUpgraded {
            who: customer.id.clone(),
        })
        .unwrap_err();
    assert_eq!(
        error.as_validation().unwrap().messages_for("name"),
        ["is frozen"]
    );
    assert_eq!(customer.version(), -1);
}

#[tokio::test]
async fn a_stored_aggregate_round_trips_with_its_events() {
    let domain = domain().await;
    let id = domain.process(valid_command()).await.unwrap();
    let customer = domain.repository::<Customer>().get(&id).await.unwrap();
    assert_eq!(customer.name, "Ada");
    assert_eq!(customer.credit, money(5000.0));
    assert_eq!(customer.version(), 0);

    let events = domain
        .event_store()
        .read_category("crm::customer", fidelis_core::Cursor::START)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].metadata.type_name, "Crm.CustomerRegistered.v2");

    // A rule checked at save time on a stored aggregate.
    let error = domain
        .process(RegisterCustomer {
            credit: money(10.0),
            ..valid_command()
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.as_validation().unwrap().messages_for("tier"),
        ["GOLD needs a credit of 1000"]
    );
    assert_eq!(
        domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_stored_aggregate_detects_concurrent_updates() {
    let domain = domain().await;
    let id = domain.process(valid_command()).await.unwrap();
    let mut first = domain.unit_of_work();
    let mut second = domain.unit_of_work();
    let mut a = first.repository::<Customer>().get(&id).await.unwrap();
    let mut b = second.repository::<Customer>().get(&id).await.unwrap();
    a.age = 40;
    b.age = 50;
    first.repository::<Customer>().add(a).await.unwrap();
    second.repository::<Customer>().add(b).await.unwrap();
    first.commit().await.unwrap();
    assert!(second.commit().await.unwrap_err().is_version_conflict());
    let stored = domain.repository::<Customer>().get(&id).await.unwrap();
    assert_eq!((stored.age, stored.version()), (40, 1));
}
