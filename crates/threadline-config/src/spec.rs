//! Process specs: a TOML file declaring process types (how to recognise one, its business
//! keys, SLA and timeouts, expected steps, terminal and critical steps, forbidden conditions,
//! owner, and channel subscribers). Parsed strictly: unknown keys and bad values are errors
//! that name the line. `docs/specs.md` documents the format.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::{ConfigError, describe_toml_error};

/// The spec format version this build reads.
pub const SPEC_VERSION: u32 = 1;

/// A validated spec file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecFile {
    pub processes: Vec<ProcessSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub name: String,
    pub recognize: Recognize,
    /// Attribute names that are business keys of this type, besides the default `*.id` rule.
    pub keys: Vec<String>,
    pub sla_nanos: Option<u64>,
    pub stuck_after_nanos: Option<u64>,
    pub idle_timeout_nanos: Option<u64>,
    pub steps: Vec<StepSpec>,
    pub forbid: Forbid,
    pub owner: Option<Owner>,
    pub channels: Vec<ChannelSpec>,
}

/// How a process of this type is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognize {
    /// By its root span: service and, optionally, operation (span name).
    Root { service: String, operation: Option<String> },
    /// By an attribute (or W3C baggage copied to attributes) on any of its spans.
    Attribute { key: String, value: String },
}

/// An expected step: spans of `service` named `operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    pub service: String,
    pub operation: String,
    /// Steps with an order must first happen in increasing order.
    pub order: Option<u32>,
    /// Fewest occurrences (default 1; 0 makes the step optional).
    pub min: u32,
    pub max: Option<u32>,
    /// The process is not complete before this step has happened.
    pub terminal: bool,
    /// An error status on this step fails the process.
    pub critical: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forbid {
    /// Any span with an error status is a violation.
    pub errors: bool,
    /// A step happening more than `1 + max_retries` times is a violation.
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub pager: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub runbook: Option<String>,
}

/// Consumer groups declared as subscribers of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub system: String,
    pub destination: String,
    pub subscribers: Vec<String>,
}

// The file's shape, before validation.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    #[serde(default)]
    process: Vec<RawProcess>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    name: String,
    #[serde(default)]
    root: Option<RawRoot>,
    #[serde(default)]
    attribute: Option<RawAttribute>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    sla: Option<String>,
    #[serde(default)]
    stuck_after: Option<String>,
    #[serde(default)]
    idle_timeout: Option<String>,
    #[serde(default)]
    step: Vec<RawStep>,
    #[serde(default)]
    forbid: Option<RawForbid>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    channel: Vec<ChannelSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    service: String,
    #[serde(default)]
    operation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    service: String,
    operation: String,
    #[serde(default)]
    order: Option<u32>,
    #[serde(default)]
    min: Option<u32>,
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    terminal: bool,
    #[serde(default)]
    critical: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForbid {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    max_retries: Option<u32>,
}

impl SpecFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        let invalid = |message: String| ConfigError::Invalid { path: origin.to_owned(), message };
        if raw.version != SPEC_VERSION {
            return Err(invalid(format!(
                "version {} is not supported: this threadline reads spec version {SPEC_VERSION}",
                raw.version
            )));
        }
        let mut names = BTreeSet::new();
        let mut processes = Vec::new();
        for (i, process) in raw.process.into_iter().enumerate() {
            let at = |field: &str| format!("process[{i}] ({:?}).{field}", process.name);
            if process.name.trim().is_empty() {
                return Err(invalid(format!("process[{i}].name must not be empty")));
            }
            if !names.insert(process.name.clone()) {
                return Err(invalid(format!(
                    "process[{i}].name {:?} is declared twice",
                    process.name
                )));
            }
            let recognize = match (process.root, process.attribute) {
                (Some(root), None) => {
                    if root.service.is_empty() {
                        return Err(invalid(format!("{} must not be empty", at("root.service"))));
                    }
                    Recognize::Root { service: root.service, operation: root.operation }
                }
                (None, Some(attribute)) => {
                    if attribute.key.is_empty() {
                        return Err(invalid(format!("{} must not be empty", at("attribute.key"))));
                    }
                    Recognize::Attribute { key: attribute.key, value: attribute.value }
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(format!(
                        "{}: give either root or attribute, not both",
                        at("root")
                    )));
                }
                (None, None) => {
                    return Err(invalid(format!(
                        "process[{i}] ({:?}) needs root = {{ service = ... }} or attribute = {{ key = ..., value = ... }} to be recognised",
                        process.name
                    )));
                }
            };
            let duration = |field: &str,
                            value: Option<String>|
             -> Result<Option<u64>, ConfigError> {
                value
                    .map(|text| {
                        parse_duration(&text).map_err(|e| invalid(format!("{}: {e}", at(field))))
                    })
                    .transpose()
            };
            let sla_nanos = duration("sla", process.sla)?;
            let stuck_after_nanos = duration("stuck_after", process.stuck_after)?;
            let idle_timeout_nanos = duration("idle_timeout", process.idle_timeout)?;
            let mut steps = Vec::new();
            for (j, step) in process.step.into_iter().enumerate() {
                let field = |f: &str| at(&format!("step[{j}].{f}"));
                if step.service.is_empty() || step.operation.is_empty() {
                    return Err(invalid(format!(
                        "{} and operation must not be empty",
                        field("service")
                    )));
                }
                let min = step.min.unwrap_or(1);
                if let Some(max) = step.max
                    && max < min
                {
                    return Err(invalid(format!(
                        "{} ({max}) is less than min ({min})",
                        field("max")
                    )));
                }
                if step.order == Some(0) {
                    return Err(invalid(format!("{} starts at 1", field("order"))));
                }
                steps.push(StepSpec {
                    service: step.service,
                    operation: step.operation,
                    order: step.order,
                    min,
                    max: step.max,
                    terminal: step.terminal,
                    critical: step.critical,
                });
            }
            for (j, channel) in process.channel.iter().enumerate() {
                if channel.destination.is_empty() || channel.subscribers.is_empty() {
                    return Err(invalid(format!(
                        "{} needs a destination and at least one subscriber",
                        at(&format!("channel[{j}]"))
                    )));
                }
            }
            let forbid = process
                .forbid
                .map(|f| Forbid { errors: f.errors, max_retries: f.max_retries })
                .unwrap_or_default();
            processes.push(ProcessSpec {
                name: process.name,
                recognize,
                keys: process.keys,
                sla_nanos,
                stuck_after_nanos,
                idle_timeout_nanos,
                steps,
                forbid,
                owner: process.owner,
                channels: process.channel,
            });
        }
        Ok(SpecFile { processes })
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `1d` (a whole number and a unit) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as \"30s\", \"5m\" or \"250ms\""))?;
    let scale: u64 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        other => {
            return Err(format!("unknown unit {other:?} in {text:?}: use ms, s, m, h or d"));
        }
    };
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(text: &str, expected: Expect) {
        let actual = match SpecFile::parse(text, "specs.toml") {
            Ok(file) => format!("ok: {} process types", file.processes.len()),
            Err(e) => format!("error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn the_shop_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop/specs.toml");
        let file = SpecFile::load(&path).unwrap();
        assert!(file.processes.iter().any(|p| p.name == "checkout"));
    }

    #[test]
    fn errors_name_the_line_or_the_field() {
        check(
            "version = 1\n[[process]]\nname = \"a\"\nroot = { service = \"x\" }\nsla = 30\n",
            expect![
                "error: specs.toml: line 5, column 7: invalid type: integer `30`, expected a string"
            ],
        );
        check(
            "version = 1\n[[process]]\nname = \"a\"\nroot = { service = \"x\" }\nslo = \"30s\"\n",
            expect![
                "error: specs.toml: line 5, column 1: unknown field `slo`, expected one of `name`, `root`, `attribute`, `keys`, `sla`, `stuck_after`, `idle_timeout`, `step`, `forbid`, `owner`, `channel`"
            ],
        );
        check(
            "version = 1\n[[process]]\nname = \"a\"\nroot = { service = \"x\" }\nsla = \"30 parsecs\"\n",
            expect![[
                r#"error: specs.toml: process[0] ("a").sla: unknown unit "parsecs" in "30 parsecs": use ms, s, m, h or d"#
            ]],
        );
        check(
            "version = 1\n[[process]]\nname = \"a\"\n",
            expect![[
                r#"error: specs.toml: process[0] ("a") needs root = { service = ... } or attribute = { key = ..., value = ... } to be recognised"#
            ]],
        );
        check(
            "version = 1\n[[process]]\nname = \"a\"\nroot = { service = \"x\" }\n[[process.step]]\nservice = \"s\"\noperation = \"o\"\nmin = 3\nmax = 1\n",
            expect![[
                r#"error: specs.toml: process[0] ("a").step[0].max (1) is less than min (3)"#
            ]],
        );
        check(
            "version = 1\n[[process]]\nname = \"a\"\nroot = { service = \"x\" }\n[[process]]\nname = \"a\"\nroot = { service = \"y\" }\n",
            expect![[r#"error: specs.toml: process[1].name "a" is declared twice"#]],
        );
        check(
            "version = 2\n",
            expect![
                "error: specs.toml: version 2 is not supported: this threadline reads spec version 1"
            ],
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000_000_000));
        assert!(parse_duration("s").is_err());
    }
}
