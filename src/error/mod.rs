//! The error model: [`ApiError`], [`ErrorKind`], [`Dialect`], the dialect parsers, the header
//! hints and rendering.

mod api_error;
mod dialect;
pub mod hints;
mod kind;
mod options;
pub(crate) mod parse;
mod render;
pub mod secret;

pub use api_error::{ApiError, HintSource};
pub use dialect::{Dialect, UnknownDialect};
pub use kind::ErrorKind;
pub use options::ParseOptions;
