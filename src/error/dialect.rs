use std::{fmt, str::FromStr};

/// A JSON error-body shape: what [`ApiError::render`](crate::ApiError::render) writes and what a
/// parsed error was read from ([`ApiError::dialect`](crate::ApiError::dialect)).
///
/// New dialects may be added in minor releases.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI and every OpenAI-compatible API:
    /// `{"error":{"message","type","code","param"}}` with a string `code`.
    OpenAi,
    /// Infuzu IMS: `{"error":{"code","message"}}` with lower_snake codes.
    Infuzu,
    /// The `success:false` envelope: `{"success":false,"error":{"code","message","details"},
    /// "meta":{"request_id","timestamp"}}` with UPPER_SNAKE codes.
    Envelope,
    /// Infron (OpenRouter-like): `{"error":{"code":<HTTP status as a number>,"message","type",
    /// "param"}}`.
    Infron,
    /// Anthropic: `{"type":"error","error":{"type","message"},"request_id"}`.
    Anthropic,
}

impl Dialect {
    /// Every dialect we render.
    pub const ALL: [Dialect; 5] = [
        Dialect::OpenAi,
        Dialect::Infuzu,
        Dialect::Envelope,
        Dialect::Infron,
        Dialect::Anthropic,
    ];

    /// The dialect's lowercase name, as accepted by [`FromStr`] (`"openai"`, `"infuzu"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Infuzu => "infuzu",
            Dialect::Envelope => "envelope",
            Dialect::Infron => "infron",
            Dialect::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a dialect name is not recognized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDialect(String);

impl fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dialect {:?}, expected one of:", self.0)?;
        for d in Dialect::ALL {
            write!(f, " {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownDialect {}

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Dialect, UnknownDialect> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownDialect(s.chars().take(64).collect()))
    }
}
