//! The build checks of old event versions, and the upcaster of each old type name.
//!
//! Every declared version must lead, through its `next` and theirs, to the current event,
//! each step to a newer version. Python's Protean starts with a chain that has a gap and
//! fails on the first old event it reads; here `build()` refuses it.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

use crate::FastMap;
use crate::model::event_version::{StepFn, Upcaster};
use crate::registry::{EventInfo, EventVersionInfo};

/// The type name of an old version: the event's name pattern at the version's number.
fn old_type_name(domain_pascal: &str, event: &EventInfo, version: u32) -> String {
    format!("{domain_pascal}.{}.v{version}", event.name)
}

/// Checks the versions of every event and returns the entry of each old type name (the
/// event's info, with the upcaster that reads that version) and the type name of each
/// version. Problems go to `problems`.
pub(super) fn upcasters(
    events: &BTreeMap<TypeId, EventInfo>,
    versions: &BTreeMap<TypeId, EventVersionInfo>,
    domain: &str,
    domain_pascal: &str,
    problems: &mut Vec<String>,
) -> (FastMap<String, EventInfo>, FastMap<TypeId, String>) {
    let mut entries = FastMap::default();
    let mut names = FastMap::default();
    // Two declarations of one version of one event.
    let mut declared: BTreeMap<(&str, u32), Vec<&str>> = BTreeMap::new();
    for version in versions.values() {
        declared
            .entry((version.of_name, version.version))
            .or_default()
            .push(version.name);
    }
    for ((event, number), mut declarations) in declared {
        if declarations.len() > 1 {
            declarations.sort_unstable();
            problems.push(format!(
                "version {number} of event `{event}` is declared {} times (`{}`): keep one `#[event_version(of = {event}, version = {number})]`",
                declarations.len(),
                declarations.join("`, `"),
            ));
        }
    }

    for (type_id, version) in versions {
        let Some(event) = events.get(&version.of) else {
            problems.push(format!(
                "`{}` is an old version of event `{}`, which is not registered in domain `{domain}`",
                version.name, version.of_name
            ));
            continue;
        };
        if version.version >= event.version {
            problems.push(format!(
                "`{}` declares version {} of event `{}`, but the current `{}` is version {}: an old version's number is lower than the current one's (raise the event's `#[event(.., version = N)]`)",
                version.name, version.version, event.name, event.name, event.version
            ));
            continue;
        }
        match chain(*type_id, version, versions, domain) {
            Ok(steps) => {
                let mut entry = event.clone();
                entry.type_name = old_type_name(domain_pascal, event, version.version);
                entry.version = version.version;
                entry.upcaster = Some(Upcaster {
                    decode: version.decode,
                    steps: steps.into(),
                    finish: event.finish,
                });
                names.insert(*type_id, entry.type_name.clone());
                entries.insert(entry.type_name.clone(), entry);
            }
            Err(problem) => problems.push(problem),
        }
    }
    (entries, names)
}

/// The steps from `start` to the current event, or why there is no such path.
fn chain(
    start: TypeId,
    first: &EventVersionInfo,
    versions: &BTreeMap<TypeId, EventVersionInfo>,
    domain: &str,
) -> Result<Vec<StepFn>, String> {
    let mut steps = vec![first.step];
    let mut current = first;
    let mut seen = BTreeSet::from([start]);
    while current.next != first.of {
        let Some(next) = versions.get(&current.next) else {
            return Err(format!(
                "the upcasters of event `{}` have a gap: `{}` (v{}) goes to `next = {}`, which is not a declared version of `{}` in domain `{domain}`, so stored v{} events cannot reach the current version: declare it with `#[event_version(of = {}, version = N)]` and register it, or point `next` at a declared version",
                first.of_name,
                current.name,
                current.version,
                current.next_name,
                first.of_name,
                first.version,
                first.of_name,
            ));
        };
        if next.of != first.of {
            return Err(format!(
                "`{}`'s `next = {}` is a version of event `{}`, not of `{}`: `next` names a newer version of the same event",
                current.name, next.name, next.of_name, first.of_name
            ));
        }
        if next.version <= current.version || !seen.insert(current.next) {
            return Err(format!(
                "`{}` (v{}) goes to `next = {}` (v{}): `next` names a newer version of `{}` (or the event itself)",
                current.name, current.version, next.name, next.version, first.of_name
            ));
        }
        steps.push(next.step);
        current = next;
    }
    Ok(steps)
}

/// `my_crate::events::DepositMade` → `DepositMade`, for messages.
pub(super) fn short_type_name(full: &'static str) -> &'static str {
    let end = full.find('<').unwrap_or(full.len());
    full[..end].rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn type_names_are_shortened_to_the_last_segment() {
        assert_eq!(short_type_name("bank::events::DepositMade"), "DepositMade");
        assert_eq!(short_type_name("DepositMade"), "DepositMade");
        assert_eq!(short_type_name("fidelis_core::Fact<bank::Account>"), "Fact");
    }
}
