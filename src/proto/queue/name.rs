//! Queue names (topics) and subscription patterns, validated on construction.

use std::fmt;
use std::str::FromStr;

/// Longest queue name or pattern, in bytes (the node record's name limit).
pub const MAX_NAME_LEN: usize = 64;
/// Most dot-separated segments in a name or pattern.
pub const MAX_SEGMENTS: usize = 16;

/// Why a string is not a valid queue name or pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The string is empty.
    #[error("empty queue name")]
    Empty,
    /// The string is longer than [`MAX_NAME_LEN`] bytes.
    #[error("queue name is {0} bytes, at most {MAX_NAME_LEN} are allowed")]
    TooLong(usize),
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("queue name has {0} segments, at most {MAX_SEGMENTS} are allowed")]
    TooManySegments(usize),
    /// A segment is empty (leading, trailing or doubled dot).
    #[error("empty segment at position {0}")]
    EmptySegment(usize),
    /// A character outside `[A-Za-z0-9_-]` (and, in patterns, `*`/`#` segments).
    #[error("invalid character {ch:?} in segment {segment}")]
    BadChar {
        /// The segment's position.
        segment: usize,
        /// The offending character.
        ch: char,
    },
    /// A wildcard in a queue name, or mixed with other characters in a pattern segment.
    #[error("wildcard {0:?} is only allowed as a whole pattern segment")]
    Wildcard(String),
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Splits and checks the shared shape; `wildcards` allows `*`/`#` segments.
fn check(s: &str, wildcards: bool) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(s.len()));
    }
    let n = s.split('.').count();
    if n > MAX_SEGMENTS {
        return Err(NameError::TooManySegments(n));
    }
    for (i, seg) in s.split('.').enumerate() {
        if seg.is_empty() {
            return Err(NameError::EmptySegment(i));
        }
        if seg == "*" || seg == "#" {
            if wildcards {
                continue;
            }
            return Err(NameError::Wildcard(seg.to_owned()));
        }
        if let Some(ch) = seg
            .chars()
            .find(|c| !c.is_ascii() || !is_word_byte(*c as u8))
        {
            if ch == '*' || ch == '#' {
                return Err(NameError::Wildcard(seg.to_owned()));
            }
            return Err(NameError::BadChar { segment: i, ch });
        }
    }
    Ok(())
}

/// A valid queue (or topic) name such as `orders.eu.created`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueName(String);

impl QueueName {
    /// Validates `s` as a queue name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        check(s, false)?;
        Ok(QueueName(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl FromStr for QueueName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        QueueName::new(s)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// Matches exactly this segment.
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `#`: zero or more segments.
    Any,
}

/// A valid subscription pattern such as `orders.*.created` or `orders.#`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Validates `s` as a pattern.
    pub fn new(s: &str) -> Result<Self, NameError> {
        check(s, true)?;
        let segments = s
            .split('.')
            .map(|seg| match seg {
                "*" => Segment::One,
                "#" => Segment::Any,
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect();
        Ok(Pattern {
            text: s.to_owned(),
            segments,
        })
    }

    /// The pattern that matches exactly `name`.
    pub fn exact(name: &QueueName) -> Self {
        Pattern {
            text: name.0.clone(),
            segments: name
                .segments()
                .map(|s| Segment::Literal(s.to_owned()))
                .collect(),
        }
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this pattern matches `name`.
    pub fn matches(&self, name: &QueueName) -> bool {
        super::matches(self, name)
    }
}

impl FromStr for Pattern {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Pattern::new(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_and_patterns() {
        assert_eq!(
            QueueName::new("orders.eu-1.created")
                .unwrap()
                .segments()
                .count(),
            3
        );
        assert!(QueueName::new("a").is_ok());
        let p = Pattern::new("orders.*.#").unwrap();
        assert_eq!(
            p.segments(),
            &[
                Segment::Literal("orders".into()),
                Segment::One,
                Segment::Any
            ]
        );
        assert_eq!(p.to_string(), "orders.*.#");
        // Every queue name is a valid record name.
        assert!(crate::proto::roster::validate_name("orders.eu-1.created").is_ok());
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        assert_eq!(QueueName::new(""), Err(NameError::Empty));
        assert_eq!(QueueName::new(&"a".repeat(65)), Err(NameError::TooLong(65)));
        assert_eq!(
            QueueName::new(&["a"; 17].join(".")),
            Err(NameError::TooManySegments(17))
        );
        assert_eq!(QueueName::new("a..b"), Err(NameError::EmptySegment(1)));
        assert_eq!(QueueName::new(".a"), Err(NameError::EmptySegment(0)));
        assert_eq!(QueueName::new("a."), Err(NameError::EmptySegment(1)));
        assert_eq!(
            QueueName::new("a.b c"),
            Err(NameError::BadChar {
                segment: 1,
                ch: ' '
            })
        );
        assert_eq!(
            QueueName::new("a.é"),
            Err(NameError::BadChar {
                segment: 1,
                ch: 'é'
            })
        );
        assert_eq!(QueueName::new("a.*"), Err(NameError::Wildcard("*".into())));
        assert_eq!(Pattern::new("a.b*"), Err(NameError::Wildcard("b*".into())));
        assert_eq!(Pattern::new("#x"), Err(NameError::Wildcard("#x".into())));
    }
}
