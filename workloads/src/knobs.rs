//! Workload knobs: named settings given as `--knob NAME=VALUE`, each declared with a
//! default and a line of help, checked before a run starts.

use std::collections::BTreeMap;
use std::str::FromStr;

/// One knob a workload declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// Its name, in kebab-case.
    pub name: &'static str,
    /// The value it has when not set.
    pub default: &'static str,
    /// One line on what it does and which values it takes.
    pub help: &'static str,
}

/// A knob that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnobError {
    /// The workload has no knob of that name.
    #[error("workload {workload} has no knob '{knob}' (its knobs: {known})")]
    Unknown {
        /// The workload.
        workload: String,
        /// The name given.
        knob: String,
        /// The knobs it has, comma-separated.
        known: String,
    },
    /// The value does not parse or is out of range.
    #[error("knob {knob}={value}: {why}")]
    Invalid {
        /// The knob.
        knob: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A workload's knobs for one run: every declared knob, set or default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    values: BTreeMap<&'static str, String>,
}

impl Knobs {
    /// Every knob of `declared`, taking values from `set` and defaults for the rest;
    /// refuses a name that is not declared.
    pub fn resolve(
        workload: &str,
        declared: &[Knob],
        set: &BTreeMap<String, String>,
    ) -> Result<Self, KnobError> {
        if let Some(name) = set
            .keys()
            .find(|n| !declared.iter().any(|k| k.name == n.as_str()))
        {
            let known: Vec<&str> = declared.iter().map(|k| k.name).collect();
            return Err(KnobError::Unknown {
                workload: workload.to_string(),
                knob: name.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let values = declared
            .iter()
            .map(|k| {
                (
                    k.name,
                    set.get(k.name).cloned().unwrap_or_else(|| k.default.to_string()),
                )
            })
            .collect();
        Ok(Self { values })
    }

    /// The text of knob `name`.
    pub fn text(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// Knob `name` parsed as a `T`.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, KnobError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text(name);
        text.parse()
            .map_err(|e: T::Err| self.invalid(name, e.to_string()))
    }

    /// Knob `name` as a share of operations, in [0, 1].
    pub fn share(&self, name: &str) -> Result<f64, KnobError> {
        let share: f64 = self.parse(name)?;
        if !(0.0..=1.0).contains(&share) {
            return Err(self.invalid(name, "must be between 0 and 1".into()));
        }
        Ok(share)
    }

    /// Knob `name` as a whole number in `min..=max`.
    pub fn count(&self, name: &str, min: u32, max: u32) -> Result<u32, KnobError> {
        let n: u32 = self.parse(name)?;
        if !(min..=max).contains(&n) {
            return Err(self.invalid(name, format!("must be {min}..={max}")));
        }
        Ok(n)
    }

    /// The error for knob `name`'s value.
    pub fn invalid(&self, name: &str, why: String) -> KnobError {
        KnobError::Invalid {
            knob: name.to_string(),
            value: self.text(name).to_string(),
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[Knob] = &[
        Knob {
            name: "share",
            default: "0.5",
            help: "a share",
        },
        Knob {
            name: "batch",
            default: "1",
            help: "a count",
        },
    ];

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_what_is_not_set() {
        let knobs = Knobs::resolve("w", DECLARED, &set(&[("batch", "4")])).unwrap();
        assert_eq!(knobs.share("share").unwrap(), 0.5);
        assert_eq!(knobs.count("batch", 1, 10).unwrap(), 4);
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused_with_what_is_known() {
        let err = Knobs::resolve("w", DECLARED, &set(&[("bach", "4")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "workload w has no knob 'bach' (its knobs: share, batch)"
        );
        let knobs = Knobs::resolve("w", DECLARED, &set(&[("share", "1.5"), ("batch", "x")])).unwrap();
        assert!(knobs
            .share("share")
            .unwrap_err()
            .to_string()
            .contains("between 0 and 1"));
        assert!(knobs
            .count("batch", 1, 10)
            .unwrap_err()
            .to_string()
            .starts_with("knob batch=x"));
    }
}
