//! The published JSON Schema of results documents: it is what the types generate (so it cannot
//! drift), `drover schema` prints it, real results validate against it, and it rejects a
//! document that is wrong (so the validation every other test runs is not vacuous).

use crate::common;

use std::path::Path;

use common::{check_results_written, drover, text};

fn published() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(drover::results::SCHEMA_FILE);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_published_schema_is_the_one_the_types_generate_and_the_cli_prints() {
    let generated = drover::results::json_schema();
    assert_eq!(
        published(),
        generated,
        "docs/results.schema.json is stale: regenerate it with `cargo run -- schema > docs/results.schema.json`"
    );
    let dir = tempfile::tempdir().unwrap();
    let output = drover(dir.path(), &["schema"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, generated);
    assert_eq!(
        printed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        printed["properties"]["schema"]["const"],
        drover::results::SCHEMA
    );
}

#[test]
fn a_run_validates_and_a_broken_document_does_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "name = \"schema\"\n[[targets]]\nname = \"mock\"\nmodel = \"m\"\npricing = { model = \"gpt-4.1\" }\n\
         [targets.mock]\nttft = \"1ms\"\nitl = \"1ms\"\noutput_tokens = 4\n\n\
         [[classes]]\nname = \"a\"\ninput_tokens = 8\n\n[[classes]]\nname = \"b\"\ninput_tokens = 16\n\n\
         [load]\nkind = \"open\"\nrate = 200\nrequests = 40\n\n[slo]\nassert = [\"ttft.p90 < 1s\"]\n",
    )
    .unwrap();
    let since = std::time::SystemTime::now();
    let output = common::run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(check_results_written(dir.path(), since), 1);

    let run = common::only_run_dir(&dir.path().join("out"));
    let valid: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&published()).unwrap();
    assert!(validator.is_valid(&valid));

    // A count of the wrong type, a missing required field, a status drover never writes and
    // another schema's name are each refused, at their place.
    type Breakage = (&'static str, fn(&mut serde_json::Value));
    let broken: [Breakage; 4] = [
        ("/targets/0/summary/requests/sent", |d| {
            d["targets"][0]["summary"]["requests"]["sent"] = "many".into()
        }),
        ("", |d| {
            d.as_object_mut().unwrap().remove("started_at");
        }),
        ("/status", |d| d["status"] = "finished".into()),
        ("/schema", |d| d["schema"] = "drover.results/v2".into()),
    ];
    for (place, break_it) in broken {
        let mut document = valid.clone();
        break_it(&mut document);
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(errors.iter().any(|p| p == place), "{place}: {errors:?}");
    }
}
