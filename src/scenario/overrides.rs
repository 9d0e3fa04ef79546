//! Overrides of a scenario's values from the command line (`--set KEY=VALUE`) and the environment
//! (`DROVER_SET_<ANY>=KEY=VALUE`), applied to the file's text before it is validated, so that a
//! rate matrix or a preview URL needs no edited copy of the file.
//!
//! A key is a dotted path into the TOML document: `load.rate`, `cost.budget`. In an array of
//! tables (`targets`, `classes`) a step picks an element by its `name` or by its 0-based index:
//! `targets.openai.base_url`, `classes.0.max_tokens`. A value is read as TOML when it parses
//! (`40`, `true`, `1.5`, `["ttft.p50 < 1s"]`, `{ model = "gpt-4.1" }`) and as a string otherwise
//! (`30s`, `http://127.0.0.1:8080/v1`). Missing tables and keys are created; elements of an array
//! of tables are not.

use std::fmt;
use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use super::locate::KeyPath;

/// Environment variables whose names start with this each hold one `KEY=VALUE` override.
pub const ENV_PREFIX: &str = "DROVER_SET_";

/// Where an override came from, as its errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--set KEY=VALUE`.
    Flag,
    /// An environment variable `DROVER_SET_*`, by name.
    Env(String),
}

/// One `KEY=VALUE` override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

impl Override {
    /// Reads `KEY=VALUE`.
    pub fn parse(text: &str, origin: Origin) -> Result<Override, String> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!("\"{text}\" is not KEY=VALUE (e.g. load.rate=40)"));
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|step| step.trim().is_empty()) {
            return Err(format!(
                "\"{key}\" is not a dotted key (e.g. load.rate or targets.NAME.base_url)"
            ));
        }
        Ok(Override {
            key: key.to_string(),
            value: value.trim().to_string(),
            origin,
        })
    }

    /// The overrides in the environment, in the order of their variables' names; `env_vars`
    /// lists (name, value) pairs.
    pub fn from_env(
        env_vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<Override>, String> {
        let mut vars: Vec<(String, String)> = env_vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        vars.into_iter()
            .map(|(name, value)| {
                Override::parse(&value, Origin::Env(name.clone()))
                    .map_err(|e| format!("{name}: {e}"))
            })
            .collect()
    }

    /// How errors and results name it: `--set load.rate` or `DROVER_SET_RATE (load.rate)`.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Flag => format!("--set {}", self.key),
            Origin::Env(name) => format!("{name} ({})", self.key),
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Flag => write!(f, "--set {}={}", self.key, self.value),
            Origin::Env(name) => write!(f, "{name}={}={}", self.key, self.value),
        }
    }
}

/// An override applied: where in the document it landed (`targets[1].base_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub with: Override,
    pub path: KeyPath,
}

impl Applied {
    /// Whether a problem found at `key` (a key path as validation prints it) lies in this
    /// override's value.
    pub fn covers(&self, key: &str) -> bool {
        let own = self.path.to_string();
        key == own
            || key
                .strip_prefix(own.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    }
}

/// An override that cannot be applied: its label and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub label: String,
    pub message: String,
}

/// Applies `overrides` in order to the scenario `text` (read from `path`); returns the new text
/// and where each override landed, or what is wrong with the first that cannot be applied.
pub fn apply(
    text: &str,
    path: &Path,
    overrides: &[Override],
) -> Result<(String, Vec<Applied>), Refused> {
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| Refused {
        label: path.display().to_string(),
        message: e.message().to_string(),
    })?;
    let mut applied = Vec::with_capacity(overrides.len());
    for with in overrides {
        let steps: Vec<&str> = with.key.split('.').map(str::trim).collect();
        let landed = set(
            document.as_table_mut(),
            KeyPath::root(),
            &steps,
            &with.value,
        )
        .map_err(|message| Refused {
            label: with.label(),
            message,
        })?;
        applied.push(Applied {
            with: with.clone(),
            path: landed,
        });
    }
    Ok((document.to_string(), applied))
}

/// A value as written on the command line: TOML when it parses as a value, else a string.
fn value_of(text: &str) -> Value {
    text.parse::<Value>()
        .map(|value| value.decorated(" ", ""))
        .unwrap_or_else(|_| Value::from(text))
}

/// Sets the dotted `steps` under `table` (found at `at`) to `raw`; returns the key path it
/// landed at.
fn set(
    table: &mut dyn TableLike,
    at: KeyPath,
    steps: &[&str],
    raw: &str,
) -> Result<KeyPath, String> {
    let Some((step, rest)) = steps.split_first() else {
        return Err("an empty key names no value".to_string());
    };
    let here = at.key(step);
    if rest.is_empty() {
        let mut value = value_of(raw);
        // A replaced value keeps its spacing and trailing comment.
        if let Some(old) = table.get(step).and_then(Item::as_value) {
            *value.decor_mut() = old.decor().clone();
        }
        table.insert(step, Item::Value(value));
        return Ok(here);
    }
    if table.get(step).is_none() {
        let mut new_table = Table::new();
        new_table.set_implicit(true);
        table.insert(step, Item::Table(new_table));
    }
    let item = table.get_mut(step).expect("present or inserted above");
    if let Some(array) = item.as_array_of_tables_mut() {
        let (pick, rest) = rest.split_first().expect("rest is not empty");
        let names: Vec<String> = array
            .iter()
            .enumerate()
            .map(|(k, element)| {
                element
                    .get("name")
                    .and_then(Item::as_str)
                    .map_or_else(|| k.to_string(), str::to_string)
            })
            .collect();
        let index = names
            .iter()
            .position(|name| name == pick)
            .or_else(|| pick.parse::<usize>().ok().filter(|k| *k < names.len()))
            .ok_or_else(|| {
                format!(
                    "{here} has no element named \"{pick}\" (by name or index: {})",
                    names.join(", ")
                )
            })?;
        if rest.is_empty() {
            return Err(format!(
                "{here}[{index}] is a whole table: set one of its keys ({here}.{pick}.KEY=VALUE)"
            ));
        }
        let element = array.get_mut(index).expect("index found above");
        return set(element, here.index(index), rest, raw);
    }
    match item.as_table_like_mut() {
        Some(inner) => set(inner, here, rest, raw),
        None => Err(format!(
            "{here} is a value, not a table: it has no key \"{}\"",
            rest[0]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n\n[[targets]]\nname = \"a\"\nbase_url = \"http://one/v1\"\npricing = { model = \"gpt-4.1\" }\n\n[[targets]]\nname = \"b\"\n\n[load]\nkind = \"open\"\nrate = 20 # per second\n";

    fn flag(text: &str) -> Override {
        Override::parse(text, Origin::Flag).unwrap()
    }

    fn applied(overrides: &[&str]) -> (String, Vec<String>) {
        let overrides: Vec<Override> = overrides.iter().map(|o| flag(o)).collect();
        let (text, applied) = apply(DOC, Path::new("s.toml"), &overrides).unwrap();
        (text, applied.iter().map(|a| a.path.to_string()).collect())
    }

    fn refused(overrides: &[&str]) -> Refused {
        let overrides: Vec<Override> = overrides.iter().map(|o| flag(o)).collect();
        apply(DOC, Path::new("s.toml"), &overrides).unwrap_err()
    }

    #[test]
    fn a_value_is_replaced_where_it_stands_and_read_as_toml_or_a_string() {
        let (text, paths) = applied(&["load.rate=40", "targets.a.base_url=http://two:8080/v1"]);
        assert_eq!(paths, ["load.rate", "targets[0].base_url"]);
        let document: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(document["load"]["rate"].as_integer(), Some(40));
        assert_eq!(
            document["targets"][0]["base_url"].as_str(),
            Some("http://two:8080/v1")
        );
        // Replaced in place: every other line stays on its line.
        assert_eq!(text.lines().count(), DOC.lines().count());
        assert_eq!(text.lines().nth(12).unwrap(), "rate = 40 # per second");
    }

    #[test]
    fn elements_are_picked_by_name_or_index_and_missing_keys_and_tables_are_made() {
        let (text, paths) = applied(&[
            "targets.1.model=m",
            "targets.a.pricing.model=claude-sonnet-4-5",
            "cost.budget=2.5",
            "load.duration=30s",
        ]);
        assert_eq!(
            paths,
            [
                "targets[1].model",
                "targets[0].pricing.model",
                "cost.budget",
                "load.duration"
            ]
        );
        let document: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(document["targets"][1]["model"].as_str(), Some("m"));
        assert_eq!(
            document["targets"][0]["pricing"]["model"].as_str(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(document["cost"]["budget"].as_float(), Some(2.5));
        assert_eq!(document["load"]["duration"].as_str(), Some("30s"));
    }

    #[test]
    fn what_cannot_be_applied_is_refused_by_its_label() {
        let missing = refused(&["targets.c.model=m"]);
        assert_eq!(missing.label, "--set targets.c.model");
        assert!(
            missing.message.contains("no element named \"c\""),
            "{missing:?}"
        );
        assert!(missing.message.contains("a, b"), "{missing:?}");
        let whole = refused(&["targets.a=1"]);
        assert!(whole.message.contains("is a whole table"), "{whole:?}");
        let scalar = refused(&["load.rate.per=1"]);
        assert!(
            scalar.message.contains("load.rate is a value"),
            "{scalar:?}"
        );
    }

    #[test]
    fn overrides_read_from_flags_and_the_environment() {
        assert!(Override::parse("load", Origin::Flag).is_err());
        assert!(Override::parse("=3", Origin::Flag).is_err());
        assert!(Override::parse("load..rate=3", Origin::Flag).is_err());
        let equals_in_value = flag("targets.a.query.sig=a=b");
        assert_eq!(equals_in_value.value, "a=b");
        let env = Override::from_env([
            ("PATH".to_string(), "/bin".to_string()),
            ("DROVER_SET_B".to_string(), "load.rate=5".to_string()),
            ("DROVER_SET_A".to_string(), "load.kind=closed".to_string()),
        ])
        .unwrap();
        assert_eq!(env.len(), 2);
        assert_eq!(env[0].key, "load.kind");
        assert_eq!(env[1].label(), "DROVER_SET_B (load.rate)");
        assert_eq!(env[1].to_string(), "DROVER_SET_B=load.rate=5");
        let bad = Override::from_env([("DROVER_SET_X".to_string(), "nothing".to_string())]);
        assert!(bad.unwrap_err().starts_with("DROVER_SET_X: "));
    }

    #[test]
    fn an_override_covers_the_keys_below_it_only() {
        let applied = Applied {
            with: flag("targets.a.pricing={ model = \"x\" }"),
            path: KeyPath::root().key("targets").index(0).key("pricing"),
        };
        assert!(applied.covers("targets[0].pricing"));
        assert!(applied.covers("targets[0].pricing.model"));
        assert!(!applied.covers("targets[0].pricing_extra"));
        assert!(!applied.covers("targets[1].pricing"));
    }
}
