//! A quick run from flags (`drover run --url URL --model M --rate 20 --duration 10s`, or
//! `--mock`) written as an ordinary scenario file: it validates like any file, results record it
//! as run, and `--print-scenario` prints it so that a quick run can become a file that sends the
//! same traffic (the seed is written out).

use std::fmt::Write as _;

use super::validate::DEFAULT_SEED;

/// The APIs a quick run may name (`--api`), as a scenario spells them.
pub const APIS: [&str; 5] = [
    "openai",
    "anthropic",
    "responses",
    "completions",
    "embeddings",
];
/// The modes a quick run may name (`--mode`).
pub const MODES: [&str; 3] = ["stream", "complete", "batch-api"];
/// The arrival processes of an open loop (`--arrival`).
pub const ARRIVALS: [&str; 2] = ["poisson", "constant"];

/// Where a quick run sends its traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum QuickTarget {
    /// An endpoint's base URL (`http://host:port/v1`) and, optionally, the variable holding its
    /// key.
    Url {
        base_url: String,
        key_env: Option<String>,
    },
    /// The embedded mock with its default latencies.
    Mock,
}

/// How much load: an open loop at a rate, or a closed loop of users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuickLoad {
    Rate {
        per_second: f64,
        arrival: &'static str,
    },
    Users(u32),
}

/// When a quick run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum QuickLength {
    /// A duration as written (`10s`, `2m`).
    Duration(String),
    Requests(u64),
}

/// Everything a quick run's flags say.
#[derive(Debug, Clone, PartialEq)]
pub struct QuickRun {
    pub target: QuickTarget,
    pub model: String,
    pub api: Option<&'static str>,
    pub mode: Option<&'static str>,
    pub load: QuickLoad,
    pub length: QuickLength,
    pub input_tokens: u64,
    pub max_tokens: u32,
    pub seed: Option<u64>,
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl QuickRun {
    /// The scenario file this quick run is, as TOML text.
    pub fn to_toml(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# A quick run (drover run --url or --mock, without a file) as a scenario file."
        );
        let _ = writeln!(text, "name = \"quick\"");
        let _ = writeln!(text, "seed = {}", self.seed.unwrap_or(DEFAULT_SEED));
        let _ = writeln!(text, "\n[[targets]]");
        let _ = writeln!(text, "name = \"target\"");
        let _ = writeln!(text, "model = {}", quoted(&self.model));
        if let Some(api) = self.api {
            let _ = writeln!(text, "api = {}", quoted(api));
        }
        if let Some(mode) = self.mode {
            let _ = writeln!(text, "mode = {}", quoted(mode));
        }
        match &self.target {
            QuickTarget::Url { base_url, key_env } => {
                let _ = writeln!(text, "base_url = {}", quoted(base_url));
                if let Some(key_env) = key_env {
                    let _ = writeln!(text, "api_key_env = {}", quoted(key_env));
                }
            }
            QuickTarget::Mock => {
                // Its default latencies, answering as many tokens as asked for.
                let _ = writeln!(text, "[targets.mock]");
                let _ = writeln!(text, "output_tokens = {}", self.max_tokens);
            }
        }
        let _ = writeln!(text, "\n[[classes]]");
        let _ = writeln!(text, "name = \"default\"");
        let _ = writeln!(text, "input_tokens = {}", self.input_tokens);
        let _ = writeln!(text, "max_tokens = {}", self.max_tokens);
        let _ = writeln!(text, "\n[load]");
        match self.load {
            QuickLoad::Rate {
                per_second,
                arrival,
            } => {
                let _ = writeln!(text, "kind = \"open\"");
                let _ = writeln!(text, "arrival = {}", quoted(arrival));
                let _ = writeln!(text, "rate = {per_second:?}");
            }
            QuickLoad::Users(users) => {
                let _ = writeln!(text, "kind = \"closed\"");
                let _ = writeln!(text, "users = {users}");
            }
        }
        match &self.length {
            QuickLength::Duration(duration) => {
                let _ = writeln!(text, "duration = {}", quoted(duration));
            }
            QuickLength::Requests(requests) => {
                let _ = writeln!(text, "requests = {requests}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(target: QuickTarget, load: QuickLoad, length: QuickLength) -> QuickRun {
        QuickRun {
            target,
            model: "m".into(),
            api: None,
            mode: None,
            load,
            length,
            input_tokens: 128,
            max_tokens: 64,
            seed: Some(7),
        }
    }

    #[test]
    fn a_quick_run_is_a_scenario_that_validates() {
        let url = QuickTarget::Url {
            base_url: "http://127.0.0.1:9/v1".into(),
            key_env: Some("MY_KEY".into()),
        };
        let rate = QuickLoad::Rate {
            per_second: 20.0,
            arrival: "constant",
        };
        let text = quick(url, rate, QuickLength::Duration("10s".into())).to_toml();
        let plan =
            crate::scenario::parse_with_env(&text, std::path::Path::new("quick.toml"), &|_| {
                Some("k".into())
            })
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(plan.seed, 7);
        assert_eq!(plan.targets[0].name, "target");
        assert_eq!(
            plan.load.expected_requests(crate::shard::Shard::WHOLE),
            Some(200.0)
        );
        let text = quick(
            QuickTarget::Mock,
            QuickLoad::Users(3),
            QuickLength::Requests(30),
        )
        .to_toml();
        let plan =
            crate::scenario::parse_with_env(&text, std::path::Path::new("q.toml"), &|_| None)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            plan.load.expected_requests(crate::shard::Shard::WHOLE),
            Some(30.0)
        );
    }

    #[test]
    fn strings_are_quoted_so_no_flag_can_break_the_file() {
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000Ad\"");
        let mut run = quick(
            QuickTarget::Mock,
            QuickLoad::Users(1),
            QuickLength::Requests(1),
        );
        run.model = "m\"\n[load]\nkind = \"x".into();
        let text = run.to_toml();
        let file: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            file["targets"][0]["model"].as_str(),
            Some(run.model.as_str())
        );
    }
}
