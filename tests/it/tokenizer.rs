//! A model's own tokenizer from a file (`tokenizer = { file = "tokenizer.json" }`): synthetic
//! prompts exact in its vocabulary, a server without usage counted in it, its chat template's
//! tokens in the input count, answers without usage checked against their events and cap, and
//! bad files refused at validation with their place.

use std::path::{Path, PathBuf};

use crate::common::{drover, only_results, run_s_toml, text};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

/// A scratch folder holding the test tokenizer (and its tokenizer_config.json) as `tok/`.
fn dir_with_tokenizer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tok")).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture_dir().join(file), dir.path().join("tok").join(file)).unwrap();
    }
    dir
}

fn tokenizer() -> drover::tokenizer::Tokenizer {
    drover::tokenizer::Tokenizer::File(
        drover::tokenizer::FileTokenizer::load(&fixture_dir().join("tokenizer.json"), None)
            .unwrap(),
    )
}

const LENGTHS: [u64; 5] = [1, 7, 64, 512, 2048];

fn classes() -> String {
    LENGTHS
        .iter()
        .map(|n| format!("[[classes]]\nname = \"p{n}\"\ninput_tokens = {n}\nmax_tokens = 64\n\n"))
        .collect()
}

#[test]
fn synthetic_prompts_are_exact_in_the_files_vocabulary_as_the_mock_counts_them() {
    let dir = dir_with_tokenizer();
    // The mock plays a server of that model: its usage counts prompts with the same file,
    // chat template included. 20 requests per class.
    let scenario = format!(
        r#"
[[targets]]
name = "model"
model = "m"
tokenizer = {{ file = "tok/tokenizer.json" }}
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 24
tokenizer = {{ file = "tok/tokenizer.json" }}

{}
[load]
kind = "closed"
users = 4
requests = 100
"#,
        classes()
    );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let target = &results["targets"][0];
    let used = &target["tokenizer"];
    assert!(
        used["name"].as_str().unwrap().contains("tokenizer.json"),
        "{used}"
    );
    assert!(
        used["template_source"]
            .as_str()
            .unwrap()
            .contains("tokenizer_config.json"),
        "{used}"
    );
    let template = used["template_per_message"].as_u64().unwrap()
        + used["template_per_request"].as_u64().unwrap();
    let own = tokenizer().template();
    assert_eq!(template, own.per_message + own.per_request);
    for (class, length) in target["classes"].as_array().unwrap().iter().zip(LENGTHS) {
        let group = class;
        let ok = group["requests"]["succeeded"].as_u64().unwrap();
        assert!(ok > 0, "{class}");
        // The server's usage: every prompt of exactly `length` tokens plus the template.
        assert_eq!(
            group["tokens"]["input"].as_u64().unwrap(),
            ok * (length + template),
            "{}",
            class["name"]
        );
        assert_eq!(group["tokens"]["source_usage"].as_u64().unwrap(), ok);
    }
}

#[test]
fn a_server_without_usage_is_counted_in_the_files_vocabulary_and_results_say_so() {
    let dir = dir_with_tokenizer();
    let scenario = r#"
[[targets]]
name = "model"
model = "m"
stream_usage = false
tokenizer = { file = "tok/tokenizer.json" }
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 24
tokenizer = { file = "tok/tokenizer.json" }

[[classes]]
name = "c"
input_tokens = 64
max_tokens = 64

[load]
kind = "closed"
users = 2
requests = 30
"#;
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let tokens = &results["targets"][0]["summary"]["tokens"];
    // Answers of 24 of that vocabulary's tokens, stopped before the cap: counted exactly.
    assert_eq!(tokens["output"], 30 * 24, "{tokens}");
    assert_eq!(tokens["source_tokenizer"], 30, "{tokens}");
    assert_eq!(tokens["source_usage"], 0, "{tokens}");
    // The input count is the client's: the prompt and the template's tokens.
    let own = tokenizer().template();
    assert_eq!(
        tokens["input"].as_u64().unwrap(),
        30 * (64 + own.per_message + own.per_request)
    );
    let warnings = results["warnings"].to_string();
    assert!(
        warnings.contains("30 responses carried no usage")
            && warnings.contains("30 by the tokenizer.json ("),
        "{warnings}"
    );
    // The terminal marks tokens/s and TPOT as estimates and says why.
    assert!(
        stdout.contains("~: estimated. 30 of 30 answers came without usage"),
        "{stdout}"
    );
    let summary_md = std::fs::read_to_string(
        crate::common::only_run_dir(&dir.path().join("out")).join("summary.md"),
    )
    .unwrap();
    assert!(summary_md.contains("~: estimated."), "{summary_md}");
    let row = summary_md
        .lines()
        .find(|line| line.starts_with("| ") && line.contains("| model |"))
        .unwrap();
    assert!(row.matches(" ~").count() >= 2, "{row}");
}

#[test]
fn answers_in_a_vocabulary_drover_was_not_given_are_counted_within_five_percent() {
    let dir = dir_with_tokenizer();
    // The server (the mock) speaks the test vocabulary; drover counts with o200k_base, and
    // the server sends no usage. "cut": 32 tokens cut at max_tokens; "stop": 32 tokens well
    // under the cap.
    let scenario = r#"
[[targets]]
name = "other"
model = "m"
stream_usage = false
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 64
tokenizer = { file = "tok/tokenizer.json" }

[[classes]]
name = "cut"
input_tokens = 16
max_tokens = 32

[load]
kind = "closed"
users = 2
requests = 30
"#;
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let tokens = &results["targets"][0]["summary"]["tokens"];
    // Every answer stopped at its cap: exactly 32 each, counted as the cap.
    assert_eq!(tokens["output"], 30 * 32, "{tokens}");
    assert_eq!(tokens["source_max_tokens"], 30, "{tokens}");
    assert!(
        results["warnings"]
            .to_string()
            .contains("30 as their max_tokens (stopped at the cap"),
        "{}",
        results["warnings"]
    );

    let stop = scenario
        .replace("output_tokens = 64", "output_tokens = 32")
        .replace("max_tokens = 32", "max_tokens = 64")
        .replace("\"cut\"", "\"stop\"");
    std::fs::write(dir.path().join("s.toml"), stop).unwrap();
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let tokens = &results["targets"][0]["summary"]["tokens"];
    let per_answer = tokens["output"].as_f64().unwrap() / 30.0;
    assert!(
        (per_answer - 32.0).abs() <= 32.0 * 0.05,
        "{per_answer} tokens per answer: {tokens}"
    );
    // Counted by a vocabulary that is not the model's: an estimate, and said so.
    assert_eq!(tokens["source_tokenizer"], 30, "{tokens}");
    assert!(
        results["warnings"]
            .to_string()
            .contains("30 by the o200k_base tokenizer"),
        "{}",
        results["warnings"]
    );
}

#[test]
fn bad_tokenizer_files_are_refused_with_their_place() {
    let dir = dir_with_tokenizer();
    std::fs::write(dir.path().join("not.json"), "{ \"hello\": 1 }").unwrap();
    // A word-level vocabulary of three words: too few for synthetic prompts.
    std::fs::write(
        dir.path().join("tiny.json"),
        r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordLevel","vocab":{"[UNK]":0,"alpha":1,"beta":2},"unk_token":"[UNK]"}}"#,
    )
    .unwrap();
    let scenario = |target: &str, class: &str| {
        format!(
            r#"
[[targets]]
name = "t"
model = "m"
tokenizer = {target}
[targets.mock]

[[classes]]
name = "c"
input_tokens = 16
tokenizer = {class}

[load]
kind = "closed"
users = 1
requests = 1
"#
        )
    };
    let cases = [
        (
            scenario(r#"{ file = "missing.json" }"#, r#""o200k_base""#),
            "s.toml:5:22: targets[0].tokenizer.file cannot read ",
            "missing.json",
        ),
        (
            scenario(r#"{ file = "not.json" }"#, r#""o200k_base""#),
            "s.toml:5:22: targets[0].tokenizer.file ",
            "not.json is not a Hugging Face tokenizer.json",
        ),
        (
            scenario(r#""o200k_base""#, r#"{ file = "tiny.json" }"#),
            "classes[0].input_tokens synthetic prompts of an exact length need words that are one token each",
            "tiny.json",
        ),
        (
            scenario(r#"{ file = "tok/tokenizer.json", templates = 1 }"#, r#""o200k_base""#),
            "unknown field `templates`",
            "s.toml:5",
        ),
        (
            scenario(r#""o300k_base""#, r#""o200k_base""#),
            "unknown variant `o300k_base`",
            "s.toml:5",
        ),
    ];
    for (scenario, first, second) in cases {
        std::fs::write(dir.path().join("s.toml"), &scenario).unwrap();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{scenario}\n{stderr}");
        assert!(
            stderr.contains(first) && stderr.contains(second),
            "{scenario}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A broken chat template beside a good tokenizer: refused, with the config's path and the
    // way out.
    std::fs::write(
        dir.path().join("tok/tokenizer_config.json"),
        r#"{ "chat_template": "{% for m in messages %}" }"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        scenario(r#"{ file = "tok/tokenizer.json" }"#, r#""o200k_base""#),
    )
    .unwrap();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tokenizer_config.json: its chat_template does not parse")
            && stderr.contains("set the tokenizer's template_tokens instead"),
        "{stderr}"
    );
    // With template_tokens set, the same file validates.
    std::fs::write(
        dir.path().join("s.toml"),
        scenario(
            r#"{ file = "tok/tokenizer.json", template_tokens = { per_message = 5, per_request = 3 } }"#,
            r#""o200k_base""#,
        ),
    )
    .unwrap();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}
