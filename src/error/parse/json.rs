//! A JSON tree that borrows its strings from the body: what the shape readers look at.
//!
//! # Why not `serde_json::Value`
//!
//! Classifying is measured against a plain `serde_json::from_slice::<Value>` of the same body
//! (`benches/classify.rs`), and most of that parse is allocation: one `String` per key and per
//! string value, and the `Map` nodes, all freed again right after. The readers only look things
//! up, so [`Node`] keeps strings as `Cow<'_, str>` borrowed from the body (owned only when the
//! JSON string has escapes) and objects as a small vector of entries.
//!
//! # Same reading as `Value`
//!
//! The tree is built by the same `serde_json` deserializer, through the same `deserialize_any`
//! calls `Value`'s own visitor receives, so syntax, UTF-8, number range and nesting depth are
//! checked exactly as before: a body is valid JSON here if and only if it is a valid `Value`.
//! What `Value` does with the parsed pieces is reproduced too:
//!
//! - numbers become [`serde_json::Number`] as `Value` makes them (a float is never non-finite
//!   after parsing, but would become `Null` as in `Value`);
//! - a key that appears twice keeps its first position and its last value, as `Map::insert`
//!   does; lookups and [`Obj::len`] therefore see what the `Value` would show;
//! - the only reader that *iterates* an object (Azure's content-filter results) does so in
//!   `serde_json::Map` order ([`Obj::iter_map_order`]), and the only one that prints a subtree
//!   (OpenRouter's raw provider error) converts it to a `Value` first ([`Node::to_value`]), so
//!   both follow whatever `Map` is compiled in (`preserve_order` or not).
//!
//! Rare shapes take the old road: an object with more than [`MAX_FAST_KEYS`] keys (so the
//! duplicate check stays a short linear scan), or a key `serde_json` reserves for its own
//! `arbitrary_precision` / `raw_value` features, make [`parse`] answer
//! [`Parsed::UseValue`]; the caller then parses a `Value` and views it with
//! [`Node::from_value`].

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::{borrow::Cow, fmt};

/// The most keys one object may have on the fast path.
pub(crate) const MAX_FAST_KEYS: usize = 64;

/// One JSON value, strings borrowed from the input where possible.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Obj<'a>),
}

/// A JSON object: keys in first-seen order, each once (a repeated key's last value wins).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a> {
    entries: Vec<(Cow<'a, str>, Node<'a>)>,
}

/// What [`parse`] made of a body.
pub(crate) enum Parsed<'a> {
    /// A JSON document.
    Tree(Node<'a>),
    /// Not valid JSON (`serde_json::from_slice::<Value>` fails on it too).
    Invalid,
    /// Valid or not, this body needs the `Value` road (see the module docs).
    UseValue,
}

/// Parses `body` into a borrowed tree.
pub(crate) fn parse(body: &[u8]) -> Parsed<'_> {
    match serde_json::from_slice::<Node<'_>>(body) {
        Ok(n) => Parsed::Tree(n),
        // Our visitor's own refusals are the only data errors `deserialize_any` produces here;
        // syntax, EOF and I/O errors come from the deserializer and would fail a `Value` too.
        Err(e) if e.is_data() => Parsed::UseValue,
        Err(_) => Parsed::Invalid,
    }
}

impl<'a> Node<'a> {
    /// A view of a parsed `Value` (the fallback road).
    pub(crate) fn from_value(v: &'a Value) -> Node<'a> {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(Cow::Borrowed(s)),
            Value::Array(a) => Node::Array(a.iter().map(Node::from_value).collect()),
            Value::Object(o) => Node::Object(Obj {
                entries: o
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Node::from_value(v)))
                    .collect(),
            }),
        }
    }

    /// The `Value` this node stands for (for printing a subtree as `Value` would).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone().into_owned()),
            Node::Array(a) => Value::Array(a.iter().map(Node::to_value).collect()),
            Node::Object(o) => Value::Object(
                o.entries
                    .iter()
                    .map(|(k, v)| (k.clone().into_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Obj<'a>> {
        match self {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Node<'a>]> {
        match self {
            Node::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn is_string(&self) -> bool {
        matches!(self, Node::String(_))
    }

    /// `Some` for an object's member `key`, as `Value::get` (objects only).
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_object()?.get(key)
    }
}

impl<'a> Obj<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The members in the order a `serde_json::Map` of the same object iterates them.
    pub(crate) fn iter_map_order(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        let order: Map<String, Value> = self
            .entries
            .iter()
            .map(|(k, _)| (k.clone().into_owned(), Value::Null))
            .collect();
        order.into_iter().filter_map(move |(k, _)| {
            let (k, v) = self.entries.iter().find(|(e, _)| *e == k)?;
            Some((k.as_ref(), v))
        })
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Why the fast path handed a body to the `Value` road.
const USE_VALUE: &str = "object shape left to serde_json::Value";

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key.starts_with("$serde_json::private::") {
                return Err(de::Error::custom(USE_VALUE));
            }
            let value: Node<'de> = map.next_value()?;
            if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            } else if entries.len() < MAX_FAST_KEYS {
                entries.push((key, value));
            } else {
                return Err(de::Error::custom(USE_VALUE));
            }
        }
        Ok(Node::Object(Obj { entries }))
    }
}

/// Reads an object key, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree must agree with `Value` on every input: valid or not, and what it holds.
    #[test]
    fn reads_what_value_reads() {
        let many_keys = format!(
            "{{{}}}",
            (0..100)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let inputs: Vec<&[u8]> = vec![
            br#"{"error":{"message":"a \"quoted\" word","code":429,"type":null}}"#,
            br#"{"b":1,"a":2,"b":3}"#,
            br#"{"x":1e400}"#,
            br#"{"x":-12,"y":1.5,"z":18446744073709551615,"w":18446744073709551616}"#,
            br#"{"s":"\ud800"}"#,
            b"{\"s\":\"\xff\"}",
            br#"{"a":[1,2,{"b":true}]} "#,
            br#"{"a":1} x"#,
            br#"{"a":"#,
            br#"{"$serde_json::private::RawValue":"{}"}"#,
            br#"{"k\u0065y":"v\n"}"#,
            br#"[{"error":{"code":503}}]"#,
            many_keys.as_bytes(),
            deep.as_bytes(),
        ];
        for input in inputs {
            let value = serde_json::from_slice::<Value>(input);
            let fallback;
            let node = match parse(input) {
                Parsed::Tree(n) => Some(n),
                Parsed::Invalid => None,
                Parsed::UseValue => {
                    fallback = serde_json::from_slice::<Value>(input).ok();
                    fallback.as_ref().map(Node::from_value)
                }
            };
            let shown = String::from_utf8_lossy(input);
            match (value, node) {
                (Ok(v), Some(n)) => assert_eq!(n.to_value(), v, "{shown}"),
                (Err(_), None) => {}
                (v, n) => panic!("{shown}: value {v:?}, node {n:?}"),
            }
        }
    }

    #[test]
    fn repeated_keys_keep_the_first_place_and_the_last_value() {
        let Parsed::Tree(Node::Object(o)) = parse(br#"{"b":1,"a":2,"b":3}"#) else {
            panic!("not an object");
        };
        assert_eq!(o.len(), 2);
        assert_eq!(o.get("b"), Some(&Node::Number(3.into())));
        let keys: Vec<&str> = o.iter_map_order().map(|(k, _)| k).collect();
        let map: Map<String, Value> = serde_json::from_str(r#"{"b":1,"a":2,"b":3}"#).unwrap();
        assert_eq!(keys, map.keys().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn plain_strings_are_borrowed() {
        let Parsed::Tree(n) = parse(br#"{"m":"plain","e":"esc\"aped"}"#) else {
            panic!("not parsed");
        };
        assert!(matches!(
            n.get("m"),
            Some(Node::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(n.get("e"), Some(Node::String(Cow::Owned(_)))));
    }
}
