//! Bodies that are not JSON: HTML pages from proxies and load balancers, plain text.
//!
//! The status decides the kind. The message is a short summary, never the page: an HTML page's
//! `<title>`, else its first run of text outside tags; a text body's first non-empty line; each
//! cut to [`MAX_SUMMARY_CHARS`] characters. A body that starts like JSON but does not parse (cut
//! by the size limit, or broken) says so. An empty body gets the status line. Bytes that are not
//! UTF-8 are replaced, never rejected.

use super::clean;
use http::StatusCode;

/// The longest summary of a non-JSON body, in characters.
pub(crate) const MAX_SUMMARY_CHARS: usize = 160;

pub(super) fn summary(status: StatusCode, body: &[u8]) -> String {
    let status_line = || {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return status_line();
    }
    if text.starts_with(['{', '[']) {
        return format!("{} (the error body is not valid JSON)", status_line());
    }
    let found = if text.starts_with('<') {
        html_title(text).or_else(|| first_text_run(text))
    } else {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(squash)
    };
    match found {
        Some(s) if !s.is_empty() => clean(&s, MAX_SUMMARY_CHARS),
        _ => status_line(),
    }
}

/// The text of the first `<title>` element, whitespace collapsed.
fn html_title(html: &str) -> Option<String> {
    let open = find_ci(html, "<title")?;
    let after = &html[open..];
    let start = after.find('>')? + 1;
    let body = &after[start..];
    let end = find_ci(body, "</title").unwrap_or(body.len().min(512));
    let t = squash(&body[..floor_boundary(body, end)]);
    (!t.is_empty()).then_some(t)
}

/// The first non-blank text between tags, skipping `<script>`/`<style>` content.
fn first_text_run(html: &str) -> Option<String> {
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        let t = squash(&rest[..lt]);
        if !t.is_empty() {
            return Some(t);
        }
        let tag = &rest[lt..];
        let skip_to = if starts_ci(tag, "<script") {
            find_ci(tag, "</script")
        } else if starts_ci(tag, "<style") {
            find_ci(tag, "</style")
        } else {
            Some(0)
        };
        let tag = &tag[skip_to?..];
        rest = &tag[tag.find('>')? + 1..];
    }
    let t = squash(rest);
    (!t.is_empty()).then_some(t)
}

/// The words of `s` joined by single spaces (one pass, one allocation).
fn squash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn starts_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Byte offset of `needle` (ASCII, starting with `<`) in `hay`, case-insensitively. `memchr`
/// finds each `<` and only there is the rest compared.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    debug_assert!(needle.starts_with('<'));
    memchr::memchr_iter(b'<', hay.as_bytes()).find(|&i| starts_ci(&hay[i..], needle))
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
