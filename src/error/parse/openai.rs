//! The `{"error": {...}}` object family: OpenAI and everything modelled on it.
//!
//! The shape, in our words: a top-level `error` object holding a `message`, and usually a coarse
//! `type`, a machine `code` and the offending `param`. Who sends which variant:
//!
//! - **OpenAI** and the OpenAI-compatible vendors (Groq, Together, DeepSeek, Mistral's newer
//!   API, vLLM's newer server, seeds 002/003): `message`, `type`, `code` (a string or `null`),
//!   `param`. Dialect [`OpenAi`](Dialect::OpenAi).
//! - **Infuzu** (seed 000): only `code` (lower_snake text) and `message`, no `type`. Dialect
//!   [`Infuzu`](Dialect::Infuzu).
//! - **Infron** (seed 004) and **OpenRouter**: `code` is a *number* equal to the HTTP status,
//!   and the same document may arrive inside a `200` body or an SSE chunk, sometimes next to
//!   `choices[..].finish_reason: "error"`. The number is read as text for
//!   [`code`](crate::ApiError::code) and gives the status of an in-band error. Infron's 403
//!   means "your input was flagged by moderation". OpenRouter adds `metadata`: `provider_name`
//!   and `raw` (the upstream provider's own error, usually JSON inside a string) for provider
//!   failures, or `reasons`/`flagged_input` for moderation. The raw error is kept bounded and
//!   masked in [`provider_detail`](crate::ApiError::provider_detail). Dialect
//!   [`Infron`](Dialect::Infron).
//! - **Azure OpenAI**: `code` (`content_filter`, `DeploymentNotFound`, `"429"`), `message`,
//!   `param`, a numeric `status`, and an `innererror` with its own `code`
//!   (`ResponsibleAIPolicyViolation`) and a `content_filter_result` (or `content_filter_results`)
//!   map from category to `{"filtered": bool, "severity": ...}`; any `filtered: true` makes it
//!   `ContentFiltered`. Dialect [`OpenAi`](Dialect::OpenAi).

use super::json::{Node, Obj};
use super::{
    Fields, MAX_DETAIL_CHARS, MAX_FIELD_CHARS, clean, clean_message, code_field, status_field,
    str_field,
};
use crate::error::{Dialect, ErrorKind};

pub(super) fn read(o: &Obj<'_>, f: &mut Fields) -> bool {
    let Some(Node::Object(err)) = o.get("error") else {
        return false;
    };
    f.message = err.get("message").and_then(Node::as_str).map(clean_message);
    f.code = code_field(err, "code");
    f.error_type = str_field(err, "type", MAX_FIELD_CHARS);
    f.param = str_field(err, "param", MAX_FIELD_CHARS);
    let numeric_code = matches!(err.get("code"), Some(Node::Number(_)));
    f.dialect = Some(if numeric_code {
        f.status = status_field(err, "code");
        Dialect::Infron
    } else if is_infuzu(err) {
        Dialect::Infuzu
    } else {
        Dialect::OpenAi
    });
    if f.status.is_none() {
        f.status = status_field(err, "status");
    }
    // Infron's 403 means "moderation flagged the input", unless a precise `type` says otherwise
    // (our own renderer writes `permission_error` for a plain permission failure).
    let precise_type = f
        .error_type
        .as_deref()
        .and_then(super::codes::lookup)
        .is_some_and(|(_, w)| w == super::codes::Weight::Decisive);
    if numeric_code && f.status == Some(403) && !precise_type {
        f.kind = Some(ErrorKind::ContentFiltered);
    }
    if let Some(Node::Object(meta)) = err.get("metadata") {
        openrouter_metadata(meta, f);
    }
    azure(err, f);
    true
}

/// Infuzu's variant: exactly a lower_snake string `code` and a `message`, nothing else.
fn is_infuzu(err: &Obj<'_>) -> bool {
    err.len() == 2
        && err.contains_key("message")
        && err.get("code").and_then(Node::as_str).is_some_and(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// OpenRouter's `metadata`: the provider's raw error, or the moderation verdict.
fn openrouter_metadata(meta: &Obj<'_>, f: &mut Fields) {
    let provider = meta.get("provider_name").and_then(Node::as_str);
    let raw = match meta.get("raw") {
        Some(Node::String(s)) => Some(s.to_string()),
        // Printed as `serde_json` prints the object (see `json::Node::to_value`).
        Some(v @ Node::Object(_)) => Some(v.to_value().to_string()),
        _ => None,
    };
    if let Some(Node::Array(reasons)) = meta.get("reasons") {
        f.kind = Some(ErrorKind::ContentFiltered);
        let list: Vec<&str> = reasons.iter().take(8).filter_map(Node::as_str).collect();
        f.provider_detail = Some(clean(
            &format!(
                "moderation ({}): {}",
                provider.unwrap_or("unknown provider"),
                list.join(", ")
            ),
            MAX_DETAIL_CHARS,
        ));
        return;
    }
    if raw.is_some() || provider.is_some() {
        let text = match (provider, raw) {
            (Some(p), Some(r)) => format!("{p}: {r}"),
            (Some(p), None) => p.to_owned(),
            (None, Some(r)) => r,
            (None, None) => return,
        };
        f.provider_detail = Some(clean(&text, MAX_DETAIL_CHARS));
    }
}

/// Azure OpenAI's `innererror` and content filter results.
fn azure(err: &Obj<'_>, f: &mut Fields) {
    let inner = err.get("innererror").and_then(Node::as_object);
    if let Some(code) = inner.and_then(|i| i.get("code")).and_then(Node::as_str) {
        f.extra_codes.push(clean(code, MAX_FIELD_CHARS));
    }
    let results = inner
        .and_then(|i| {
            i.get("content_filter_result")
                .or_else(|| i.get("content_filter_results"))
        })
        .or_else(|| err.get("content_filter_results"))
        .or_else(|| err.get("content_filter_result"))
        .and_then(Node::as_object);
    let Some(results) = results else {
        return;
    };
    let filtered: Vec<String> = results
        .iter_map_order()
        .filter_map(|(cat, r)| {
            let r = r.as_object()?;
            (r.get("filtered") == Some(&Node::Bool(true))).then(|| {
                match r.get("severity").and_then(Node::as_str) {
                    Some(sev) => format!("{cat}({sev})"),
                    None => cat.to_owned(),
                }
            })
        })
        .take(8)
        .collect();
    if !filtered.is_empty() {
        f.kind = Some(ErrorKind::ContentFiltered);
        f.provider_detail = Some(clean(
            &format!("content filter: {}", filtered.join(", ")),
            MAX_DETAIL_CHARS,
        ));
    }
}
