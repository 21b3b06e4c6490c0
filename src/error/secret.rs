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

/// The bytes that anchor the prefixes for the quick check in [`has_key`]: every prefix in
/// [`KEY_PREFIXES`] holds at least one, and they are rare in prose.
const ANCHOR_BYTES: [u8; 6] = [b'-', b'_', b'=', b'A', b'B', b'b'];

/// The prefixes whose *first* anchor byte (of [`ANCHOR_BYTES`]) is `b`, with its offset in the
/// prefix. Every prefix of [`KEY_PREFIXES`] is listed exactly once (a unit test checks it).
fn anchored(b: u8) -> &'static [(usize, &'static str)] {
    match b {
        b'-' => &[
            (2, "sk-"),
            (2, "pk-"),
            (2, "rk-"),
            (3, "xai-"),
            (3, "key-"),
            (3, "api-key="),
        ],
        b'_' => &[(2, "sk_"), (3, "gsk_"), (2, "hf_"), (3, "api_key=")],
        b'=' => &[(6, "apikey="), (3, "key=")],
        b'A' => &[(0, "AIza")],
        b'B' => &[(0, "Bearer ")],
        b'b' => &[(0, "bearer ")],
        _ => &[],
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Whether [`mask_secrets`] has anything to mask in `text`: some position that starts a
/// prefix at a token boundary and is followed by a long enough key.
///
/// Quick path: instead of trying the fifteen prefixes at every word start, one table look-up
/// per byte finds the few anchor bytes ([`ANCHOR_BYTES`]), and only the prefixes that hold that
/// byte are tried, at the one place each could start. A prefix always holds its anchor byte, so
/// no key is missed; what is found is checked with the same [`key_at`] as the full walk. (A
/// `memchr` search for the anchors measured slower: the texts are short, so its per-call set-up
/// dominates.)
fn has_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Codes, types and ids are often too short to hold a prefix and an eight-character key.
    if bytes.len() < MIN_KEY_TEXT {
        return false;
    }
    let try_at = |j: usize| {
        anchored(bytes[j]).iter().any(|&(offset, prefix)| {
            let Some(i) = j.checked_sub(offset) else {
                return false;
            };
            let p = prefix.as_bytes();
            // `prefix` is ASCII, so a match at `i` puts `i` on a char boundary.
            bytes[i] == p[0]
                && bytes[i..].starts_with(p)
                && (i == 0 || !is_key_byte(bytes[i - 1]))
                && key_at(&text[i..]).is_some()
        })
    };
    (0..bytes.len()).any(|j| IS_ANCHOR[usize::from(bytes[j])] && try_at(j))
}

/// The shortest text that can hold a key: the shortest prefix and eight key characters.
const MIN_KEY_TEXT: usize = {
    let mut min = usize::MAX;
    let mut i = 0;
    while i < KEY_PREFIXES.len() {
        if KEY_PREFIXES[i].len() < min {
            min = KEY_PREFIXES[i].len();
        }
        i += 1;
    }
    min + 8
};

/// `IS_ANCHOR[b]`: whether `b` is one of [`ANCHOR_BYTES`].
const IS_ANCHOR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < ANCHOR_BYTES.len() {
        t[ANCHOR_BYTES[i] as usize] = true;
        i += 1;
    }
    t
};

/// Returns `text` with every key-looking token masked with [`mask_key`].
///
/// A token is a run of at least eight key characters (`A-Za-z0-9-_.`) that starts with a known
/// prefix (`sk-`, `Bearer `, `AIza`, `key=` ...). Text without such a token is returned borrowed
/// after a quick check ([`has_key`]); only text that holds one is walked byte by byte.
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    if !has_key(text) {
        return Cow::Borrowed(text);
    }
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

    #[test]
    fn every_prefix_is_anchored_once() {
        for p in KEY_PREFIXES {
            let k = p.bytes().position(|b| ANCHOR_BYTES.contains(&b));
            let Some(k) = k else {
                panic!("{p} holds no anchor byte");
            };
            let listed = anchored(p.as_bytes()[k]);
            assert_eq!(listed.iter().filter(|e| **e == (k, *p)).count(), 1, "{p}");
        }
        let total: usize = (0..=255).map(|b| anchored(b).len()).sum();
        assert_eq!(total, KEY_PREFIXES.len());
    }

    /// The quick check agrees with the byte-by-byte walk on every prefix, at the start, after
    /// prose, after a key character (no boundary), too short, and cut by a full stop.
    #[test]
    fn quick_check_agrees_with_the_full_walk() {
        let walk = |t: &str| {
            (0..t.len()).any(|i| {
                t.is_char_boundary(i)
                    && (i == 0 || !is_key_byte(t.as_bytes()[i - 1]))
                    && key_at(&t[i..]).is_some()
            })
        };
        for p in KEY_PREFIXES {
            for text in [
                format!("{p}abcdefgh12"),
                format!("the key {p}abcdefgh12 was refused"),
                format!("é{p}abcdefgh12"),
                format!("x{p}abcdefgh12"),
                format!("a {p}abcdefg"),
                format!("a {p}abcdefg."),
                format!("a {p}abc.defgh."),
                format!("({p}abcdefgh12)"),
            ] {
                assert_eq!(has_key(&text), walk(&text), "{text:?}");
            }
        }
        for text in ["", "plain prose", "rate_limit_exceeded", "a-b_c=d e", "AI"] {
            assert_eq!(has_key(text), walk(text), "{text:?}");
        }
        // Random texts built from prefix pieces, key characters and separators.
        let pieces = [
            "sk", "-", "_", "=", "key", "api", "Bearer", "bearer", " ", "AIza", "abcd", "1234",
            ".", "é", "x", "hf", "gsk", "xai", "pk", "rk", "apikey", ")",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut hits = 0;
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(1..12))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let want = walk(&text);
            hits += usize::from(want);
            assert_eq!(has_key(&text), want, "{text:?}");
        }
        assert!(hits > 100, "only {hits} texts with a key");
    }
}
