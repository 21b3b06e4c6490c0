//! Server-sent events: a spec-exact incremental parser and a body wrapper that finds LLM errors
//! sent inside a `200 OK` `text/event-stream`.

mod error;
mod event;
mod inband;
mod parser;

pub use error::Error;
pub use event::Event;
pub use parser::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Parser};
