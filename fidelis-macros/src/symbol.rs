//! The keywords of the macros' arguments and helper attributes, named once.

/// `#[aggregate(event_sourced)]`
pub const EVENT_SOURCED: &str = "event_sourced";
/// `#[aggregate(event_sourced, snapshot_threshold = 500)]`
pub const SNAPSHOT_THRESHOLD: &str = "snapshot_threshold";
/// `part_of = Aggregate`
pub const PART_OF: &str = "part_of";
/// `version = N` on events and projections
pub const VERSION: &str = "version";
/// `type_name = "…"` on events
pub const TYPE_NAME: &str = "type_name";
/// `#[event(published)]`: the outbox relays the event to the broker
pub const PUBLISHED: &str = "published";
/// `crate = path`: where the runtime crate is, when renamed
pub const CRATE: &str = "crate";
/// `aggregates = [A, B]`
pub const AGGREGATES: &str = "aggregates";
/// `of = Event` on event versions
pub const OF: &str = "of";
/// `next = Type` on event versions
pub const NEXT: &str = "next";
/// `#[aggregate(fact_events)]`
pub const FACT_EVENTS: &str = "fact_events";
/// `for = Projection` on projectors
pub const FOR: &str = "for";
/// `stream = "payflow.webhooks"` on subscribers: the broker stream it reads
pub const STREAM: &str = "stream";
/// A subscriber's one method, `handle`
pub const HANDLE_METHOD: &str = "handle";

/// `#[field(identifier)]`
pub const IDENTIFIER: &str = "identifier";
/// `#[field(max_length = N)]`
pub const MAX_LENGTH: &str = "max_length";
/// `#[field(min_length = N)]`
pub const MIN_LENGTH: &str = "min_length";
/// `#[field(min_value = X)]`
pub const MIN_VALUE: &str = "min_value";
/// `#[field(max_value = X)]`
pub const MAX_VALUE: &str = "max_value";
/// `#[field(decimal_places = N)]`
pub const DECIMAL_PLACES: &str = "decimal_places";
/// `#[field(allow_non_finite)]`
pub const ALLOW_NON_FINITE: &str = "allow_non_finite";
/// `#[field(choices = ["A", "B"])]`
pub const CHOICES: &str = "choices";
/// `#[field(default = expr)]`
pub const DEFAULT: &str = "default";
/// `#[field(required)]`
pub const REQUIRED: &str = "required";
/// `#[field(unique)]`
pub const UNIQUE: &str = "unique";

/// `#[handle(C, create)]` in an `#[aggregate] impl`
pub const CREATE: &str = "create";

/// `#[handle(E, start)]` in a `#[process_manager] impl`: the step that begins an instance
pub const START: &str = "start";
/// `#[handle(E, end)]` in a `#[process_manager] impl`: the step that ends an instance
pub const END: &str = "end";
/// `#[handle(E, correlate = field)]` in a `#[process_manager] impl`
pub const CORRELATE: &str = "correlate";

/// `#[invariant(pre)]`
pub const PRE: &str = "pre";
/// `#[invariant(post)]`
pub const POST: &str = "post";

/// serde's `#[serde(..)]` attribute, checked on elements (see `check::serde_attributes`).
pub const SERDE: &str = "serde";

/// The `#[field]` helper attribute.
pub const FIELD: &str = "field";
/// The `#[apply]` helper attribute.
pub const APPLY: &str = "apply";
/// The `#[invariant]` helper attribute.
pub const INVARIANT: &str = "invariant";
/// The `#[handle]` helper attribute.
pub const HANDLE: &str = "handle";
/// The `#[on]` helper attribute.
pub const ON: &str = "on";

/// Every method helper attribute, stripped from impl blocks by the element macros.
pub const METHOD_HELPERS: &[&str] = &[APPLY, INVARIANT, HANDLE, ON];
