//! Element shapes that must compile, and behave like the hand-written reference, beyond the
//! DESIGN §2 domain (which is `fidelis-example` itself): visibility, doc comments, `#[cfg]`
//! methods, sync and async handlers, handlers returning `()` or values, value objects
//! embedded in an aggregate and a command, and every field option.

#![allow(missing_docs)]

use fidelis_core::prelude::*;

/// Shapes beyond §2: crate-private elements, docs, `#[cfg]` methods, sync handlers,
/// handlers returning `()` or a value, embedded value objects and every field option.
mod shapes {
    use fidelis_core::prelude::*;

    /// A postal address.
    #[value_object]
    pub(crate) struct Address {
        #[field(min_length = 1, max_length = 40)]
        pub street: String,
        #[field(choices = ["NL", "BE"])]
        pub country: String,
    }

    /// A customer, state-stored.
    #[aggregate]
    pub(crate) struct Customer {
        #[field(identifier)]
        pub customer_id: Identifier,
        #[field(required, unique, max_length = 30)]
        pub name: String,
        #[field(min_value = 0, max_value = 150)]
        pub age: i64,
        #[field(min_value = -1.5, max_value = 1e3)]
        pub score: f64,
        pub address: Address,
        #[field(max_length = 3)]
        pub tags: Vec<String>,
        pub extra: Option<serde_json::Value>,
        pub since: Option<NaiveDate>,
        #[field(default = true)]
        pub active: bool,
    }

    /// Registered a customer.
    #[event(part_of = Customer)]
    pub(crate) struct CustomerRegistered {
        #[field(identifier)]
        pub customer: Identifier,
        pub address: Address,
    }

    /// Register a customer.
    #[command(part_of = Customer)]
    pub(crate) struct RegisterCustomer {
        #[field(max_length = 30)]
        pub name: String,
        pub address: Address,
    }

    /// Rename a customer.
    #[command(part_of = Customer)]
    pub(crate) struct RenameCustomer {
        pub customer_id: Identifier,
        pub name: String,
    }

    #[derive(Default)]
    pub(crate) struct Customers;

    #[command_handler(part_of = Customer)]
    impl Customers {
        /// Sync, returning a value.
        #[handle(RegisterCustomer)]
        fn register(&self, command: RegisterCustomer, _ctx: &mut Context) -> Result<Identifier> {
            let mut customer = Customer::create_new();
            customer.name = command.name;
            customer.address = command.address.clone();
            let customer_id = customer.customer_id.clone();
            customer.raise(CustomerRegistered {
                customer: customer_id.clone(),
                address: command.address,
            })?;
            Ok(customer_id)
        }

        /// Async, returning nothing.
        #[handle(RenameCustomer)]
        async fn rename(&self, _command: RenameCustomer, _ctx: &mut Context) {}

        /// Compiled out: without the `#[cfg]` on its generated impls, this second handler of
        /// `RenameCustomer` would conflict with the first.
        #[cfg(any())]
        #[handle(RenameCustomer)]
        async fn rename_again(&self, _command: RenameCustomer, _ctx: &mut Context) -> Result<()> {
            Ok(())
        }
    }

    pub(crate) fn helper_is_plain(_: &Customers) {}
}

#[test]
fn shapes_have_their_field_definitions() {
    use fidelis_core::{FieldKind, HasFields};
    use shapes::*;
    let fields = Customer::FIELDS;
    let by_name = |name: &str| fields.iter().find(|f| f.name == name).unwrap();
    assert!(by_name("customer_id").identifier);
    assert!(by_name("name").unique);
    assert_eq!(by_name("age").max_value, Some(150.0));
    assert_eq!(by_name("score").min_value, Some(-1.5));
    assert_eq!(by_name("address").kind, FieldKind::Embedded);
    assert!(by_name("address").embedded.is_some());
    assert_eq!(by_name("tags").kind, FieldKind::List);
    assert!(!by_name("extra").required);
    assert!(by_name("active").has_default);
    assert!(Customer::create_new().active);
    assert_eq!(Address::FIELDS[1].choices, ["NL", "BE"]);
    assert_eq!(fields.len(), 9);
}

#[tokio::test]
async fn sync_handlers_values_and_units_dispatch() {
    use shapes::*;
    let domain = Domain::builder("shapes").build().await.unwrap();
    let address = Address {
        street: "Dam 1".into(),
        country: "NL".into(),
    };
    let id = domain
        .process(RegisterCustomer {
            name: "Ada".into(),
            address,
        })
        .await
        .unwrap();
    let () = domain
        .process(RenameCustomer {
            customer_id: id,
            name: "Bea".into(),
        })
        .await
        .unwrap();
    let bad = Address {
        street: String::new(),
        country: "FR".into(),
    };
    let error = domain
        .process(RegisterCustomer {
            name: "Ada".into(),
            address: bad,
        })
        .await
        .unwrap_err();
    let errors = error.as_validation().unwrap();
    assert_eq!(errors.messages_for("address.country").len(), 1);
    assert_eq!(errors.messages_for("address.street").len(), 1);
    shapes::helper_is_plain(&Customers);
}
