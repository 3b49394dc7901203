//! Running a domain: configuration, the contexts handlers see, repositories, the commit of a
//! unit of work with its hooks, the dispatch of committed events, and the `Domain` itself.

pub(crate) mod command_log;
pub(crate) mod commit;
pub mod config;
pub(crate) mod context;
pub(crate) mod dispatch;
pub(crate) mod domain;
pub(crate) mod facts;
pub(crate) mod options;
pub(crate) mod outbox;
pub(crate) mod process_manager;
pub(crate) mod projection_runner;
pub(crate) mod rebuild;
pub(crate) mod repository;
pub(crate) mod retry;
pub(crate) mod snapshot;
pub(crate) mod step_command;
pub(crate) mod submit;
pub(crate) mod subscriber;
pub(crate) mod temporal;
pub(crate) mod trace;
pub(crate) mod unit_of_work;
