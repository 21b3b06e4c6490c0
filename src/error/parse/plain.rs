//! Documents whose `error` is a plain string.
//!
//! The shapes, in our words:
//!
//! - **Ollama**: `{"error": "<text>"}` and nothing else, also as a line of its NDJSON stream;
//! - **TGI** (Hugging Face text-generation-inference): `{"error": "<text>", "error_type":
//!   "<category>"}`, where the category is `validation`, `generation`, `overloaded` or
//!   `incomplete_generation`; the category is kept as the code and the type;
//! - **xAI**: `{"code": "<short description>", "error": "<text>"}`: the `code` is kept as the
//!   code (it is a phrase, not an identifier, so it rarely decides the kind).
//!
//! None of them identifies one of our [`Dialect`](crate::Dialect)s.

use super::json::{Node, Obj};
use super::{Fields, MAX_FIELD_CHARS, clean_message, str_field};

pub(super) fn read(o: &Obj<'_>, f: &mut Fields) -> bool {
    let Some(Node::String(msg)) = o.get("error") else {
        return false;
    };
    if msg.trim().is_empty() {
        return false;
    }
    f.message = Some(clean_message(msg));
    if let Some(t) = str_field(o, "error_type", MAX_FIELD_CHARS) {
        f.code = Some(t.clone());
        f.error_type = Some(t);
    } else {
        f.code = super::code_field(o, "code");
    }
    true
}
