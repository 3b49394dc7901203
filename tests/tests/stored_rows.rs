//! One storage semantics for rows, through a whole domain on every adapter:
//!
//! - `#[field(unique)]` on a state-stored aggregate and on a projection: a value another row
//!   holds is `Error::Validation` on that field ("is already taken"), and nothing of the unit
//!   of work is stored — also when two rows of one unit of work take the same value, and when
//!   concurrent commands race for it;
//! - state-stored aggregates are queryable with their field handles, from
//!   `domain.repository` and from a handler's context, and a queried aggregate can be changed
//!   and saved.

#![allow(missing_docs)]

use fidelis_core::prelude::*;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(
    taken_email_is_a_validation_error,
    taken_projection_value_is_a_validation_error,
    two_rows_of_one_unit_of_work_conflict,
    concurrent_registrations_keep_one,
    stored_aggregates_are_queryable,
);

/// A library member: a state-stored aggregate with unique fields.
#[aggregate]
pub struct Member {
    #[field(unique, max_length = 100)]
    pub email: String,
    #[field(max_length = 100)]
    pub name: String,
    #[field(unique)]
    pub nickname: Option<String>,
}

#[event(part_of = Member)]
pub struct MemberRegistered {
    pub member_id: Identifier,
    pub email: String,
    pub card: String,
}

/// A projection with a unique field of its own.
#[projection]
pub struct LibraryCard {
    #[field(identifier)]
    pub member_id: Identifier,
    #[field(unique)]
    pub card_number: String,
}

#[command(part_of = Member)]
pub struct RegisterMember {
    pub email: String,
    pub name: String,
    pub card: String,
}

#[command(part_of = Member)]
pub struct RegisterPair {
    pub first_email: String,
    pub second_email: String,
}

#[command(part_of = Member)]
pub struct RenameByEmail {
    pub email: String,
    pub name: String,
}

fn member(email: &str, name: &str) -> Member {
    let mut member = Member::create_new();
    member.email = email.into();
    member.name = name.into();
    member
}

#[derive(Default)]
pub struct MemberHandler;

#[command_handler(part_of = Member)]
impl MemberHandler {
    #[handle(RegisterMember)]
    async fn register(&self, command: RegisterMember, ctx: &mut Context) -> Result<Identifier> {
        let mut member = member(&command.email, &command.name);
        let id = member.id.clone();
        member.raise(MemberRegistered {
            member_id: id.clone(),
            email: command.email,
            card: command.card,
        })?;
        ctx.repository::<Member>().add(member).await?;
        Ok(id)
    }

    #[handle(RegisterPair)]
    async fn register_pair(&self, command: RegisterPair, ctx: &mut Context) -> Result<()> {
        ctx.repository::<Member>()
            .add(member(&command.first_email, "first"))
            .await?;
        ctx.repository::<Member>()
            .add(member(&command.second_email, "second"))
            .await
    }

    /// Finds the member by a query from the handler's context, renames and saves it.
    #[handle(RenameByEmail)]
    async fn rename(&self, command: RenameByEmail, ctx: &mut Context) -> Result<Identifier> {
        let f = Member::fields();
        let Some(mut member) = ctx
            .repository::<Member>()
            .query()
            .filter(f.email.eq(command.email.clone()))
            .first()
            .await?
        else {
            return Err(Error::NotFound {
                element: "Member".into(),
                id: command.email,
            });
        };
        member.name = command.name;
        let id = member.id.clone();
        ctx.repository::<Member>().add(member).await?;
        Ok(id)
    }
}

#[derive(Default)]
pub struct LibraryCardProjector;

#[projector(for = LibraryCard, aggregates = [Member])]
impl LibraryCardProjector {
    #[on(MemberRegistered)]
    async fn on_registered(
        &self,
        event: &Event<MemberRegistered>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<LibraryCard>()
            .add(LibraryCard {
                member_id: event.member_id.clone(),
                card_number: event.card.clone(),
            })
            .await
    }
}

async fn lending(backend: &Backend) -> Domain {
    backend
        .build(Domain::builder("lending").discover_crate(module_path!()))
        .await
}

fn register(email: &str, card: &str) -> RegisterMember {
    RegisterMember {
        email: email.into(),
        name: "Ada".into(),
        card: card.into(),
    }
}

/// `error` is the validation error "`field` is already taken" of `element`.
fn assert_taken(error: &Error, element: &str, field: &str) {
    let errors = error
        .as_validation()
        .unwrap_or_else(|| panic!("a validation error, got {error:?}"));
    assert_eq!(
        errors.messages()[field],
        vec!["is already taken"],
        "{error}"
    );
    assert_eq!(errors.len(), 1, "{error}");
    assert_eq!(
        error.to_string(),
        format!("invalid {element}: {field}: is already taken")
    );
}

async fn members(domain: &Domain) -> u64 {
    domain.repository::<Member>().query().count().await.unwrap()
}

async fn cards(domain: &Domain) -> u64 {
    domain
        .repository::<LibraryCard>()
        .query()
        .count()
        .await
        .unwrap()
}

async fn events(domain: &Domain) -> usize {
    domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap()
        .len()
}

async fn taken_email_is_a_validation_error(backend: &Backend) {
    let domain = lending(backend).await;
    let ada = domain.process(register("ada@x.org", "C1")).await.unwrap();

    let error = domain
        .process(register("ada@x.org", "C2"))
        .await
        .unwrap_err();
    assert_taken(&error, "Member", "email");
    // Nothing of the failed command: no row, no event, no projection row.
    assert_eq!(members(&domain).await, 1);
    assert_eq!(events(&domain).await, 1);
    assert_eq!(cards(&domain).await, 1);

    // Saving a member with its own email again is no conflict; absent nicknames never are.
    let mut stored = domain.repository::<Member>().get(&ada).await.unwrap();
    stored.name = "Ada L".into();
    domain.repository::<Member>().add(stored).await.unwrap();
    domain
        .repository::<Member>()
        .add(member("bob@x.org", "Bob"))
        .await
        .unwrap();
    assert_eq!(members(&domain).await, 2);

    // A nickname is unique once given.
    let mut ada = domain.repository::<Member>().get(&ada).await.unwrap();
    ada.nickname = Some("ace".into());
    domain.repository::<Member>().add(ada).await.unwrap();
    let mut carol = member("carol@x.org", "Carol");
    carol.nickname = Some("ace".into());
    let error = domain.repository::<Member>().add(carol).await.unwrap_err();
    assert_taken(&error, "Member", "nickname");
    assert_eq!(members(&domain).await, 2);
}

async fn taken_projection_value_is_a_validation_error(backend: &Backend) {
    let domain = lending(backend).await;
    domain.process(register("ada@x.org", "C1")).await.unwrap();

    // The member is new, but its projector writes a card number another row holds.
    let error = domain
        .process(register("bob@x.org", "C1"))
        .await
        .unwrap_err();
    assert_taken(&error, "LibraryCard", "card_number");
    assert_eq!(members(&domain).await, 1, "the member row was not kept");
    assert_eq!(events(&domain).await, 1, "the event was not kept");
    assert_eq!(cards(&domain).await, 1);
}

async fn two_rows_of_one_unit_of_work_conflict(backend: &Backend) {
    let domain = lending(backend).await;
    let error = domain
        .process(RegisterPair {
            first_email: "same@x.org".into(),
            second_email: "same@x.org".into(),
        })
        .await
        .unwrap_err();
    assert_taken(&error, "Member", "email");
    assert_eq!(members(&domain).await, 0);

    domain
        .process(RegisterPair {
            first_email: "one@x.org".into(),
            second_email: "two@x.org".into(),
        })
        .await
        .unwrap();
    assert_eq!(members(&domain).await, 2);
}

const RACERS: usize = 8;

async fn concurrent_registrations_keep_one(backend: &Backend) {
    let domain = lending(backend).await;
    let racers: Vec<_> = (0..RACERS)
        .map(|n| {
            let domain = domain.clone();
            tokio::spawn(async move {
                domain
                    .process(register("race@x.org", &format!("C{n}")))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(error) => assert_taken(&error, "Member", "email"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(members(&domain).await, 1);
    assert_eq!(events(&domain).await, 1);
    assert_eq!(cards(&domain).await, 1);
}

async fn stored_aggregates_are_queryable(backend: &Backend) {
    let domain = lending(backend).await;
    for (email, card) in [("c@x.org", "C3"), ("a@x.org", "C1"), ("b@x.org", "C2")] {
        domain.process(register(email, card)).await.unwrap();
    }
    let f = Member::fields();
    let found = domain
        .repository::<Member>()
        .query()
        .filter(f.email.eq("b@x.org".to_owned()))
        .all()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].email, "b@x.org");
    let ordered: Vec<String> = domain
        .repository::<Member>()
        .query()
        .filter(f.email.ne("c@x.org".to_owned()))
        .order_by(f.email.desc())
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.email)
        .collect();
    assert_eq!(ordered, ["b@x.org", "a@x.org"]);

    // From a handler's context: found by a query, changed and saved, twice (the queried
    // member carries its stored version).
    let id = domain
        .process(RenameByEmail {
            email: "a@x.org".into(),
            name: "Alice".into(),
        })
        .await
        .unwrap();
    domain
        .process(RenameByEmail {
            email: "a@x.org".into(),
            name: "Alice B".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        domain.repository::<Member>().get(&id).await.unwrap().name,
        "Alice B"
    );
    // Saved from a query outside a handler, too.
    let mut queried = domain
        .repository::<Member>()
        .query()
        .filter(f.id.eq(id.clone()))
        .first()
        .await
        .unwrap()
        .expect("found by id");
    queried.name = "Alice C".into();
    domain.repository::<Member>().add(queried).await.unwrap();
    assert_eq!(
        domain.repository::<Member>().get(&id).await.unwrap().name,
        "Alice C"
    );
}
