//! Server side: render every failure of an LLM gateway in one dialect (feature `server`).
//!
//! TODO module docs
pub(crate) mod body;
pub mod render;
pub(crate) mod response;

pub use body::ServerBody;
pub use render::RenderErrorLayer;
pub use response::{ErrorSource, InDialect, X_REQUEST_ID};
pub mod api_key;
pub use api_key::{ApiKey, ApiKeyLayer, KeyVerdict};
pub mod json_body;
pub use json_body::JsonBodyLayer;
pub mod rate_limit;
pub use rate_limit::{RateDecision, RateLimitLayer};
pub mod stream;
pub use stream::{StreamErrorBody, StreamErrorLayer};
pub mod translate;
pub use translate::{translate, translate_error};
