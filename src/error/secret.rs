//! Masking of anything that looks like a credential in text a peer sent us.
//!
//! Upstreams sometimes echo part of the key they rejected ("Incorrect API key provided:
//! sk-proj-abc..."). Such text ends up in messages, logs and rendered bodies, so every message
//! taken from a peer passes through [`mask_secrets`] first.

use std::borrow::Cow;

/// Masks a key for display: its first five characters, then `***` (`sk-ab***`). Keys of eight
/// characters or fewer are masked completely.
pub fn mask_key(key: &str) -> String {
    let shown: String = if key.chars().count() > 8 {
        key.chars().take(5).collect()
    } else {
        String::new()
    };
    format!("{shown}***")
}

/// Prefixes that start an API key or token in the wild.
const KEY_PREFIXES: &[&str] = &[
    "sk-", "sk_", "pk-", "rk-", "xai-", "gsk_", "hf_", "AIza", "key-", "Bearer ", "bearer ",
    "api_key=", "api-key=", "apikey=", "key=",
];

/// `STARTS[b]`: whether some prefix in [`KEY_PREFIXES`] starts with byte `b`.
const STARTS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < KEY_PREFIXES.len() {
        t[KEY_PREFIXES[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    t
};

/// Returns `text` with every key-looking token masked with [`mask_key`].
///
/// A token is a run of at least eight key characters (`A-Za-z0-9-_.`) that starts with a known
/// prefix (`sk-`, `Bearer `, `AIza`, `key=` ...). Text without such a token is returned borrowed.
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    let is_key_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0; // text[..copied] is already in `out`
    let mut prev_key = false; // whether the previous character is a key character
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Only match at a token boundary, so "risk-assessment" does not look like a key, and
        // only where a prefix can start (an ASCII byte, hence a char boundary).
        if !prev_key && STARTS[usize::from(b)] {
            if let Some((plen, run)) = key_at(&text[i..]) {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(&text[copied..i]);
                let (prefix, token) = text[i..].split_at(plen);
                if prefix.ends_with(' ') || prefix.ends_with('=') {
                    o.push_str(prefix);
                    o.push_str(&mask_key(&token[..run]));
                } else {
                    o.push_str(&mask_key(&text[i..i + plen + run]));
                }
                i += plen + run;
                copied = i;
                prev_key = true;
                continue;
            }
        }
        // Non-ASCII bytes (and so every byte of a multi-byte character) are not key bytes.
        prev_key = is_key_byte(b);
        i += 1;
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    }
}

/// The prefix length and key length of a key starting at the beginning of `rest`, if any.
fn key_at(rest: &str) -> Option<(usize, usize)> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let p = KEY_PREFIXES.iter().find(|p| rest.starts_with(**p))?;
    let after = &rest[p.len()..];
    let run = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
    // A sentence's full stop after the key is not part of it.
    let run = after[..run].trim_end_matches('.').len();
    (run >= 8).then_some((p.len(), run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_and_keeps_other_text() {
        assert_eq!(mask_key("sk-abcdef123456"), "sk-ab***");
        assert_eq!(mask_key("short"), "***");
        assert_eq!(
            mask_secrets("Incorrect API key provided: sk-proj-abcdefgh12345. See docs."),
            "Incorrect API key provided: sk-pr***. See docs."
        );
        assert_eq!(
            mask_secrets("Authorization: Bearer abcdefghijkl"),
            "Authorization: Bearer abcde***"
        );
        assert!(matches!(
            mask_secrets("a risk-assessment error"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(mask_secrets("sk-short"), Cow::Borrowed(_)));
        assert_eq!(
            mask_secrets("ünïcode sk-0123456789ab ✓"),
            "ünïcode sk-01*** ✓"
        );
    }
}
