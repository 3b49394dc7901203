//! Process managers on every adapter, in sync and async processing: a start event makes an
//! instance and the chain of commands it issues runs to the end; `correlate` fields that are
//! `None` or name no instance are ignored; after `end` later events are ignored; a failing
//! step stores nothing; concurrent steps on one instance lose no update; a redelivered event
//! is not handled twice.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_core::query::QuerySpec;
use fidelis_core::store::system::{self, StepCommand};
use fidelis_core::{DomainBuilder, Processing};

mod support;
use support::{Backend, on_every_adapter};

#[event(part_of = Ticket)]
pub struct TicketOpened {
    pub ticket_id: Identifier,
}
#[event(part_of = Ticket)]
pub struct NoteAdded {
    pub ticket_id: Identifier,
    pub text: String,
}
#[event(part_of = Ticket)]
pub struct TicketClosed {
    pub ticket_id: Identifier,
}
#[event(part_of = Mail)]
pub struct MailSent {
    pub mail_id: Identifier,
    /// The ticket it is about, if any: the follow-up's correlation.
    pub ticket: Option<String>,
}

#[aggregate]
pub struct Ticket {
    pub notes: i64,
}
#[aggregate]
pub struct Mail {
    pub ticket: Option<String>,
}

#[command(part_of = Ticket)]
pub struct OpenTicket {
    pub title: String,
}
#[command(part_of = Ticket)]
pub struct AddNote {
    pub ticket_id: Identifier,
    pub text: String,
}
#[command(part_of = Ticket)]
pub struct CloseTicket {
    pub ticket_id: Identifier,
}
#[command(part_of = Mail)]
pub struct SendMail {
    pub ticket: Option<String>,
}

#[aggregate]
impl Ticket {
    #[handle(OpenTicket, create)]
    fn open(_: OpenTicket) -> Result<Self> {
        let mut ticket = Self::create_new();
        let ticket_id = ticket.id.clone();
        ticket.raise(TicketOpened { ticket_id })?;
        Ok(ticket)
    }
    #[handle(AddNote)]
    fn note(&mut self, command: AddNote) -> Result<()> {
        self.notes += 1;
        self.raise(NoteAdded {
            ticket_id: self.id.clone(),
            text: command.text,
        })
    }
    #[handle(CloseTicket)]
    fn close(&mut self, _: CloseTicket) -> Result<()> {
        self.raise(TicketClosed {
            ticket_id: self.id.clone(),
        })
    }
}

#[aggregate]
impl Mail {
    #[handle(SendMail, create)]
    fn send(command: SendMail) -> Result<Self> {
        let mut mail = Self::create_new();
        mail.ticket = command.ticket.clone();
        let mail_id = mail.id.clone();
        mail.raise(MailSent {
            mail_id,
            ticket: command.ticket,
        })?;
        Ok(mail)
    }
}

/// Follows a ticket: mails its opening, counts its notes and the mails about it.
#[process_manager(aggregates = [Ticket, Mail])]
pub struct FollowUp {
    pub ticket_id: Identifier,
    #[field(default = "NEW", max_length = 10)]
    pub status: String,
    pub notes: i64,
    pub mails: i64,
    /// The mail an escalation sent.
    pub escalation: Option<Identifier>,
}

/// The tickets whose escalation step already failed once (each test has its own tickets).
static CRASHED: std::sync::Mutex<Vec<Identifier>> = std::sync::Mutex::new(Vec::new());

/// Whether this is the first run of the ticket's escalation step (which then fails, as a
/// crash between its command's commit and the storing of its state would).
fn first_run(ticket: &Identifier) -> bool {
    let mut crashed = CRASHED.lock().unwrap();
    if crashed.contains(ticket) {
        return false;
    }
    crashed.push(ticket.clone());
    true
}

#[process_manager]
impl FollowUp {
    #[handle(TicketOpened, start, correlate = ticket_id)]
    async fn opened(
        &mut self,
        event: &Event<TicketOpened>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        self.ticket_id = event.ticket_id.clone();
        let _: Identifier = ctx
            .process(SendMail {
                ticket: Some(event.ticket_id.to_string()),
            })
            .await?;
        self.status = "OPEN".into();
        Ok(())
    }

    #[handle(NoteAdded, correlate = ticket_id)]
    async fn noted(
        &mut self,
        event: &Event<NoteAdded>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        if event.text == "escalate" {
            let mail: Identifier = ctx
                .process(SendMail {
                    ticket: Some(event.ticket_id.to_string()),
                })
                .await?;
            self.escalation = Some(mail);
            if first_run(&event.ticket_id) {
                return Err(Error::handler(
                    "FollowUp",
                    "crashed after the mail went out",
                ));
            }
        }
        // Yield, so that concurrent steps on one instance would interleave if they could.
        tokio::task::yield_now().await;
        if event.text == "boom" {
            self.notes += 100;
            return Err(Error::handler("FollowUp", "the note went boom"));
        }
        if event.text == "too long" {
            // Field validation runs after every step: the state is not stored.
            self.status = "MUCH TOO LONG".into();
        }
        if event.text == "done" {
            self.complete();
        }
        self.notes += 1;
        Ok(())
    }

    #[handle(MailSent, correlate = ticket)]
    fn mailed(&mut self, _: &Event<MailSent>, _: &mut EventHandlerContext) {
        self.mails += 1;
    }

    #[handle(TicketClosed, correlate = ticket_id, end)]
    fn closed(&mut self, _: &Event<TicketClosed>, _: &mut EventHandlerContext) -> Result<()> {
        self.status = "CLOSED".into();
        Ok(())
    }
}

fn builder() -> DomainBuilder {
    Domain::builder("helpdesk").discover_crate(module_path!())
}

async fn state(domain: &Domain, ticket: &Identifier) -> FollowUp {
    domain
        .process_state::<FollowUp>(ticket)
        .await
        .unwrap()
        .expect("the follow-up was started")
}

/// The whole life of one instance, in either mode (`settle` drains the engine in async).
async fn lifecycle(domain: &Domain) {
    let ticket: Identifier = domain
        .process(OpenTicket {
            title: "printer".into(),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    let follow = state(domain, &ticket).await;
    assert_eq!(follow.ticket_id, ticket);
    assert_eq!(follow.process_key(), Some(&ticket));
    assert_eq!(follow.status, "OPEN");
    // The mail the start step sent came back to the same instance, after the step was stored.
    assert_eq!(follow.mails, 1);
    assert!(!follow.is_complete());

    // `None` and keys of no instance are not this process manager's: ignored, no instance.
    let _: Identifier = domain.process(SendMail { ticket: None }).await.unwrap();
    let _: Identifier = domain
        .process(SendMail {
            ticket: Some("no-such-ticket".into()),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    assert!(
        domain
            .process_state::<FollowUp>("no-such-ticket")
            .await
            .unwrap()
            .is_none()
    );

    for text in ["first", "second"] {
        domain
            .process(AddNote {
                ticket_id: ticket.clone(),
                text: text.into(),
            })
            .await
            .unwrap();
    }
    domain.settle().await.unwrap();
    assert_eq!(state(domain, &ticket).await.notes, 2);

    domain
        .process(CloseTicket {
            ticket_id: ticket.clone(),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    let follow = state(domain, &ticket).await;
    assert!(follow.is_complete());
    assert_eq!(follow.status, "CLOSED");

    // Complete: later events are ignored.
    domain
        .process(AddNote {
            ticket_id: ticket.clone(),
            text: "late".into(),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    assert_eq!(state(domain, &ticket).await.notes, 2);
}

async fn sync_lifecycle(backend: &Backend) {
    let domain = backend.build(builder()).await;
    lifecycle(&domain).await;
    assert_eq!(domain.metrics().failed_event_handlers, 0);
}

async fn async_lifecycle(backend: &Backend) {
    let domain = backend.build(builder().processing(Processing::Async)).await;
    // Nothing runs before the engine does.
    let ticket: Identifier = domain
        .process(OpenTicket {
            title: "screen".into(),
        })
        .await
        .unwrap();
    assert!(
        domain
            .process_state::<FollowUp>(&ticket)
            .await
            .unwrap()
            .is_none()
    );
    domain.engine().run_until_idle().await.unwrap();
    assert_eq!(state(&domain, &ticket).await.mails, 1);
    let status = domain.engine().status().await.unwrap();
    assert!(status.iter().any(|s| s.name == "FollowUp"), "{status:?}");
    lifecycle(&domain).await;
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
}

/// A step that fails (its own error, or a state that fails validation) stores nothing; the
/// instance goes on with the next event.
async fn failing_step_stores_nothing(backend: &Backend) {
    let domain = backend.build(builder()).await;
    let ticket: Identifier = domain
        .process(OpenTicket { title: "x".into() })
        .await
        .unwrap();
    for text in ["boom", "too long", "fine"] {
        domain
            .process(AddNote {
                ticket_id: ticket.clone(),
                text: text.into(),
            })
            .await
            .unwrap();
    }
    let follow = state(&domain, &ticket).await;
    assert_eq!(follow.notes, 1);
    assert_eq!(follow.status, "OPEN");
    assert_eq!(domain.metrics().failed_event_handlers, 2);

    // `self.complete()` from any step ends the instance.
    domain
        .process(AddNote {
            ticket_id: ticket.clone(),
            text: "done".into(),
        })
        .await
        .unwrap();
    domain
        .process(AddNote {
            ticket_id: ticket.clone(),
            text: "after".into(),
        })
        .await
        .unwrap();
    let follow = state(&domain, &ticket).await;
    assert!(follow.is_complete());
    assert_eq!(follow.notes, 2);
}

/// Steps on one instance from concurrent commands run one at a time: every note is counted.
/// Two domains on one database (as two processes) do not lose an update either: a step
/// overtaken by the other fails with a version conflict (counted) instead of overwriting it.
async fn concurrent_steps_lose_no_update(backend: &Backend) {
    let domain = backend.build(builder()).await;
    let ticket: Identifier = domain
        .process(OpenTicket { title: "x".into() })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let domain = domain.clone();
            let ticket = ticket.clone();
            tokio::spawn(async move {
                domain
                    .process(AddNote {
                        ticket_id: ticket,
                        text: format!("note {i}"),
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(state(&domain, &ticket).await.notes, 16);
    assert_eq!(domain.metrics().failed_event_handlers, 0);

    let other = backend.build(builder()).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let domain = if i % 2 == 0 {
                domain.clone()
            } else {
                other.clone()
            };
            let ticket = ticket.clone();
            tokio::spawn(async move {
                domain
                    .process(AddNote {
                        ticket_id: ticket,
                        text: format!("note {i}"),
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let failed = domain.metrics().failed_event_handlers + other.metrics().failed_event_handlers;
    assert_eq!(
        state(&domain, &ticket).await.notes as u64 + failed,
        32,
        "every note is counted or its step failed visibly"
    );
}

/// A step that fails after a command it issued committed (as a crash before its state is
/// stored would) runs again on redelivery, and the command is not processed again: the run
/// gets the first run's output (the mail's id), and one mail went out.
async fn a_step_run_again_issues_no_command_twice(backend: &Backend) {
    let domain = backend.build(builder().processing(Processing::Async)).await;
    let ticket: Identifier = domain
        .process(OpenTicket { title: "x".into() })
        .await
        .unwrap();
    domain
        .process(AddNote {
            ticket_id: ticket.clone(),
            text: "escalate".into(),
        })
        .await
        .unwrap();
    domain.engine().run_until_idle().await.unwrap();
    let follow = state(&domain, &ticket).await;
    assert_eq!(follow.notes, 1, "the step ran to its end, once");
    assert_eq!(follow.mails, 2, "the opening mail and one escalation mail");
    let mail = follow.escalation.expect("the escalation's mail");
    let sent = domain.repository::<Mail>().get(&mail).await.unwrap();
    assert_eq!(sent.ticket.as_deref(), Some(ticket.as_str()));
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
    // The command's record, written with its events, holds the output the second run got.
    let query = QuerySpec {
        filters: vec![system::field_eq("key", ticket.to_string())],
        ..Default::default()
    };
    let recorded = system::query::<StepCommand>(domain.storage_unchecked().as_ref(), &query)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let escalation = recorded
        .iter()
        .find(|row| row.output == Some(serde_json::json!(mail.as_str())))
        .expect("the escalation mail's record");
    assert_eq!(escalation.process, "FollowUp");
    assert_eq!(escalation.type_name, "SendMail");
}

on_every_adapter!(
    a_step_run_again_issues_no_command_twice,
    sync_lifecycle,
    async_lifecycle,
    failing_step_stores_nothing,
    concurrent_steps_lose_no_update
);
