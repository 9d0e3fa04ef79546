//! Overrides from the command line and the environment (`--set KEY=VALUE`, `DROVER_SET_*`):
//! they change exactly the values they name, results record them, and a bad one exits 2 naming
//! the override while a problem of the file keeps its file:line:column.

use crate::common;

use std::path::Path;

use common::{drover, only_results, text};

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/quickstart.toml")
        .display()
        .to_string()
}

/// Every path (`load.rate`, `classes[0].max_tokens`) where two JSON documents differ.
fn differences(a: &serde_json::Value, b: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let next = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let missing = Value::Null;
                differences(
                    x.get(key).unwrap_or(&missing),
                    y.get(key).unwrap_or(&missing),
                    &next,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

fn run_quickstart(dir: &Path, sets: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let file = quickstart();
    let mut args = vec!["run", file.as_str(), "--out", "out", "--no-progress"];
    for set in sets {
        args.extend_from_slice(&["--set", set]);
    }
    let output = drover(dir, &args, env);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    only_results(&dir.join("out"))
}

#[test]
fn set_changes_exactly_the_values_it_names_and_results_record_it() {
    let (plain, changed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both runs last 2 s instead of the file's 10 s.
    let base = run_quickstart(plain.path(), &["load.duration=2s"], &[]);
    let overridden = run_quickstart(
        changed.path(),
        &["load.duration=2s", "classes.chat.max_tokens=16"],
        &[("DROVER_SET_RATE", "load.rate=40")],
    );
    let mut changes = Vec::new();
    differences(
        &base["scenario"]["as_run"],
        &overridden["scenario"]["as_run"],
        "",
        &mut changes,
    );
    assert_eq!(changes, ["classes[0].max_tokens", "load.rate"]);
    assert_eq!(overridden["scenario"]["as_run"]["load"]["rate"], 40.0);
    assert_eq!(
        overridden["scenario"]["overrides"],
        serde_json::json!([
            "DROVER_SET_RATE=load.rate=40",
            "--set load.duration=2s",
            "--set classes.chat.max_tokens=16"
        ])
    );
    assert_eq!(
        base["scenario"]["overrides"],
        serde_json::json!(["--set load.duration=2s"])
    );
    // The load followed: about 40 req/s for 2 s against 20.
    let sent = |r: &serde_json::Value| {
        r["targets"][0]["summary"]["requests"]["sent"]
            .as_u64()
            .unwrap()
    };
    assert!(
        sent(&overridden) > sent(&base),
        "{} vs {}",
        sent(&overridden),
        sent(&base)
    );
}

#[test]
fn a_bad_override_exits_2_naming_it_and_a_file_error_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = quickstart();
    for (set, expected) in [
        ("load.rate=-1", "error: --set load.rate: must be from"),
        ("load.rate=fast", "error: --set load.rate: invalid type: string \"fast\""),
        ("classes.nope.max_tokens=16", "error: --set classes.nope.max_tokens: classes has no element named \"nope\" (by name or index: chat, summarize)"),
        ("load", "\"load\" is not KEY=VALUE"),
    ] {
        let output = drover(
            dir.path(),
            &["run", &file, "--out", "out", "--no-progress", "--set", set],
            &[],
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{set}: {stderr}");
        assert!(stderr.contains(expected), "{set}: {stderr}");
        assert!(!dir.path().join("out").exists(), "{set}: nothing is written");
    }
    let output = drover(
        dir.path(),
        &["validate", &file],
        &[("DROVER_SET_USERS", "load.max_in_flight=0")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("error: DROVER_SET_USERS (load.max_in_flight): "),
        "{}",
        text(&output.stderr)
    );
    // A problem the file has on its own is still reported at its place in the file.
    std::fs::write(
        dir.path().join("s.toml"),
        "[[targets]]\nname = \"m\"\nmodel = \"m\"\n[targets.mock]\nttft = \"5ms\"\n\n[[classes]]\nname = \"c\"\ninput_tokens = 8\n\n[load]\nkind = \"closed\"\nusers = 0\nrequests = 10\n",
    )
    .unwrap();
    let output = drover(
        dir.path(),
        &["validate", "s.toml", "--set", "load.requests=20"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("s.toml:13:9: load.users"), "{stderr}");
}
