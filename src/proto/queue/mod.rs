//! Federated queues and topics: validated queue names, AMQP-style
//! subscription patterns (`*` = exactly one segment, `#` = zero or more) and
//! the registry of which cluster hosts which queue and subscribes to what.
//!
//! Names and patterns are dot-separated segments of `[A-Za-z0-9_-]`, at most
//! [`MAX_NAME_LEN`] bytes, so every valid queue name is also a valid record
//! queue name (`roster::validate_name`) and fits the node record as-is.

mod matcher;
mod name;
mod registry;

pub use matcher::matches;
pub use name::{MAX_NAME_LEN, MAX_SEGMENTS, NameError, Pattern, QueueName, Segment};
pub use registry::{MAX_PER_CLUSTER, QueueRegistry, RegistryError, RegistryUpdate};
