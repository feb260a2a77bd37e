//! Validity as Jepsen has it: true, false, or unknown; false beats unknown beats true.

use serde::{Serialize, Serializer};

/// Whether a history satisfies a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// No anomaly found and everything needed to decide was present.
    True,
    /// An anomaly was found.
    False,
    /// Not enough information to decide (e.g. the final reads never completed).
    Unknown,
}

impl Validity {
    /// Combines two results: false beats unknown beats true.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (False, _) | (_, False) => False,
            (Unknown, _) | (_, Unknown) => Unknown,
            (True, True) => True,
        }
    }

    /// The process exit code `tumult` uses for this verdict: 0, 1 or 2.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::True => 0,
            Validity::False => 1,
            Validity::Unknown => 2,
        }
    }

    /// `valid`, `INVALID` or `unknown`, for one-line summaries.
    pub fn label(self) -> &'static str {
        match self {
            Validity::True => "VALID",
            Validity::False => "INVALID",
            Validity::Unknown => "UNKNOWN",
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::True => serializer.serialize_bool(true),
            Validity::False => serializer.serialize_bool(false),
            Validity::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Validity::*;

    #[test]
    fn false_beats_unknown_beats_true() {
        assert_eq!(True.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(False), False);
        assert_eq!(True.merge(True), True);
        assert_eq!(
            serde_json::to_string(&[True, False, Unknown]).unwrap(),
            r#"[true,false,"unknown"]"#
        );
    }
}
