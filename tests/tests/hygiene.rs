//! Generated code names everything by absolute path: a crate that shadows the prelude's
//! `Option`, `Result`, `String`, `Vec`, `Box`, `Some`, `Ok` … and renames `fidelis_core`
//! (`crate = fid`) still compiles and runs.

#![allow(missing_docs, dead_code, non_camel_case_types, non_upper_case_globals)]

extern crate fidelis_core as fid;

mod shadowing {
    // Everything the generated code might name unqualified, shadowed (not `str`: serde_derive
    // itself names it unqualified).
    pub struct Option;
    pub struct String;
    pub struct Vec;
    pub struct Box;
    pub struct Default;
    pub struct Clone;
    pub struct Into;

    pub type Result = ();
    pub const Some: () = ();
    pub const None: () = ();
    pub const Ok: () = ();
    pub const Err: () = ();
    pub mod core {}
    pub mod std {}
    pub mod serde {}
    pub mod fidelis_core {}

    #[fid::value_object(crate = fid)]
    pub struct Money {
        #[field(min_value = 0)]
        pub amount: f64,
        #[field(max_length = 3)]
        pub currency: ::std::string::String,
    }

    #[fid::aggregate(crate = fid, event_sourced)]
    pub struct Purse {
        #[field(max_length = 20, default = "coins")]
        pub kind: ::std::string::String,
        #[field(default = 0.0)]
        pub total: f64,
        pub note: ::std::option::Option<::std::string::String>,
        pub tags: ::std::vec::Vec<::std::string::String>,
        pub last: ::std::option::Option<Money>,
    }

    #[fid::aggregate(crate = fid)]
    impl Purse {
        #[invariant(post)]
        fn not_negative(&self) -> ::std::result::Result<(), fid::ValidationError> {
            ::std::result::Result::Ok(())
        }

        #[handle(NewPurse, create)]
        async fn new_purse(command: NewPurse) -> fid::Result<Self> {
            let mut purse = Self::create_new();
            let purse_id = purse.id.clone();
            purse.raise(Filled {
                purse_id,
                amount: command.amount,
                memo: ::std::option::Option::None,
            })?;
            ::std::result::Result::Ok(purse)
        }

        #[handle(Tag)]
        fn tag(&mut self, command: Tag) -> fid::Result<usize> {
            self.tags.push(command.tag);
            ::std::result::Result::Ok(self.tags.len())
        }

        #[apply]
        fn on_filled(&mut self, event: &Filled) {
            self.total += event.amount.amount;
            self.last = ::std::option::Option::Some(event.amount.clone());
        }
    }

    #[fid::event(crate = fid, part_of = Purse)]
    pub struct Filled {
        pub purse_id: fid::Identifier,
        pub amount: Money,
        pub memo: ::std::option::Option<::std::string::String>,
    }

    #[fid::command(crate = fid, part_of = Purse)]
    pub struct Fill {
        pub purse_id: ::std::option::Option<fid::Identifier>,
        pub amount: Money,
        #[field(default = 1)]
        pub times: i64,
    }

    #[fid::command(crate = fid, part_of = Purse)]
    pub struct NewPurse {
        pub amount: Money,
    }

    #[fid::command(crate = fid, part_of = Purse)]
    pub struct Tag {
        #[field(identifier)]
        pub purse: fid::Identifier,
        pub tag: ::std::string::String,
    }

    #[derive(::std::default::Default)]
    pub struct PurseHandler;

    #[fid::command_handler(crate = fid, part_of = Purse)]
    impl PurseHandler {
        #[handle(Fill)]
        async fn fill(
            &self,
            command: Fill,
            ctx: &mut fid::Context,
        ) -> fid::Result<fid::Identifier> {
            let mut purse = match command.purse_id {
                ::std::option::Option::Some(id) => ctx.repository::<Purse>().get(&id).await?,
                ::std::option::Option::None => Purse::create_new(),
            };
            let id = purse.id.clone();
            for _ in 0..command.times {
                purse.raise(Filled {
                    purse_id: id.clone(),
                    amount: command.amount.clone(),
                    memo: ::std::option::Option::None,
                })?;
            }
            ctx.repository::<Purse>().add(purse).await?;
            ::std::result::Result::Ok(id)
        }
    }

    #[fid::projection(crate = fid)]
    pub struct PurseRow {
        #[field(identifier)]
        pub purse_id: fid::Identifier,
        pub total: f64,
        pub fills: i64,
    }

    #[derive(::std::default::Default)]
    pub struct PurseRows;

    #[fid::projector(crate = fid, for = PurseRow, aggregates = [Purse])]
    impl PurseRows {
        #[on(Filled)]
        async fn on_filled(
            &self,
            event: &fid::Event<Filled>,
            ctx: &mut fid::ProjectorContext<'_>,
        ) -> fid::Result<()> {
            let mut repo = ctx.repository::<PurseRow>();
            let row = match repo.get(&event.purse_id).await {
                ::std::result::Result::Ok(mut row) => {
                    row.total += event.amount.amount;
                    row.fills += 1;
                    row
                }
                ::std::result::Result::Err(_) => PurseRow {
                    purse_id: event.purse_id.clone(),
                    total: event.amount.amount,
                    fills: 1,
                },
            };
            repo.add(row).await
        }
    }

    pub struct Audit;

    #[fid::event_handler(crate = fid, aggregates = [Purse])]
    impl Audit {
        #[handle(Filled)]
        fn on_filled(_event: &fid::Event<Filled>, _ctx: &mut fid::EventHandlerContext) {}
    }
}

#[tokio::test]
async fn a_shadowing_crate_with_a_renamed_runtime_runs() {
    use shadowing::*;
    let domain = fid::Domain::builder("hygiene").build().await.unwrap();
    let amount = Money {
        amount: 2.5,
        currency: "EUR".into(),
    };
    let id = domain
        .process(Fill {
            purse_id: ::std::option::Option::None,
            amount,
            times: 2,
        })
        .await
        .unwrap();
    let purse = domain.repository::<Purse>().get(&id).await.unwrap();
    assert_eq!(purse.total, 5.0);
    assert_eq!(purse.kind, "coins");
    assert_eq!(purse.version(), 1);
    let row = domain.repository::<PurseRow>().get(&id).await.unwrap();
    assert_eq!(row.fills, 2);
    assert_eq!(PurseRow::fields().total.name(), "total");

    let purse = domain
        .process(NewPurse {
            amount: Money {
                amount: 1.0,
                currency: "EUR".into(),
            },
        })
        .await
        .unwrap();
    let tags = domain
        .process(Tag {
            purse,
            tag: "spare".into(),
        })
        .await
        .unwrap();
    assert_eq!(tags, 1);

    let fill = Fill::from_json(r#"{"amount": {"amount": 1.0, "currency": "EUR"}}"#).unwrap();
    assert_eq!(fill.times, 1);
}
