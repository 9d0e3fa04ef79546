//! The Kubernetes manifests (rendered from the Helm chart; `deploy/check.sh` validates both
//! against the Kubernetes schemas) and the Dockerfile cannot be applied here, so this keeps them
//! honest from drover's side: it parses every manifest as YAML and checks the fields the workers
//! and the merge step rely on (indexed completions, the shard count, the failure policy, the key
//! from a Secret, the scenario from a ConfigMap, the shared results volume, drover's own flags),
//! and that the embedded scenario is a valid drover scenario.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of every manifest, by `kind/name`.
fn manifests() -> BTreeMap<String, Yaml> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()));
        for doc in docs {
            let kind = doc["kind"].as_str().expect("every manifest has a kind");
            let name = doc["metadata"]["name"].as_str().expect("and a name");
            all.insert(format!("{kind}/{name}"), doc);
        }
    }
    all
}

fn get<'a>(all: &'a BTreeMap<String, Yaml>, key: &str) -> &'a Yaml {
    all.get(key)
        .unwrap_or_else(|| panic!("no {key} in deploy/kubernetes"))
}

fn list(yaml: &Yaml) -> &[Yaml] {
    yaml.as_vec().map_or(&[], Vec::as_slice)
}

fn str_of(yaml: &Yaml) -> &str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {yaml:?}"))
}

fn env_entry<'a>(container: &'a Yaml, name: &str) -> &'a Yaml {
    list(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("container has no env {name}"))
}

/// The mount path of the volume backed by `check` (e.g. a given PVC), and that volume's name.
fn mount_of(pod: &Yaml, container: &Yaml, check: impl Fn(&Yaml) -> bool) -> String {
    let volume = list(&pod["volumes"])
        .iter()
        .find(|v| check(v))
        .expect("the pod declares the volume");
    let name = str_of(&volume["name"]);
    let mount = list(&container["volumeMounts"])
        .iter()
        .find(|m| m["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("volume {name} is not mounted"));
    str_of(&mount["mountPath"]).to_string()
}

fn is_results_volume(v: &Yaml) -> bool {
    v["persistentVolumeClaim"]["claimName"].as_str() == Some("drover-results")
}

#[test]
fn the_workers_job_is_indexed_and_wired_to_scenario_secret_and_results() {
    let all = manifests();
    let job = get(&all, "Job/drover-workers");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_i64().expect("completions");
    assert_eq!(spec["parallelism"].as_i64(), Some(completions));
    // A failed worker fails only its own index, and is not retried later (out of step).
    assert_eq!(spec["backoffLimitPerIndex"].as_i64(), Some(0));
    assert!(spec["backoffLimit"].is_badvalue(), "no Job-wide limit");
    // Exits that are the same for every shard (bad input, could not run, preflight, over budget)
    // fail the Job at once; a verdict never reaches the policy (the worker exits 0 on it).
    let rules = list(&spec["podFailurePolicy"]["rules"]);
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["action"].as_str(), Some("FailJob"));
    let on_exit = &rules[0]["onExitCodes"];
    assert_eq!(on_exit["operator"].as_str(), Some("In"));
    let codes: Vec<i64> = list(&on_exit["values"])
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(codes, [2, 3, 4, 5]);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let containers = list(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(
        on_exit["containerName"].as_str(),
        container["name"].as_str()
    );

    // The shard count the workers read equals the number of indices Kubernetes hands out.
    let count = str_of(&env_entry(container, "DROVER_SHARD_COUNT")["value"]);
    assert_eq!(count.parse::<i64>().unwrap(), completions);
    assert!(
        list(&container["env"])
            .iter()
            .all(|e| e["name"].as_str() != Some(drover::shard::INDEX_ENV)),
        "Kubernetes sets JOB_COMPLETION_INDEX itself; the manifest must not override it"
    );
    assert_eq!(drover::shard::INDEX_ENV, "JOB_COMPLETION_INDEX");
    assert_eq!(drover::shard::COUNT_ENV, "DROVER_SHARD_COUNT");

    // args: run <scenario on the ConfigMap mount> --out <under the results volume> --start-at …
    let args: Vec<&str> = list(&container["args"]).iter().map(str_of).collect();
    assert_eq!(args[0], "run");
    let scenario_mount = mount_of(pod, container, |v| {
        v["configMap"]["name"].as_str() == Some("drover-scenario")
    });
    let scenario_path = Path::new(args[1]);
    assert_eq!(scenario_path.parent().unwrap(), Path::new(&scenario_mount));
    let results_mount = mount_of(pod, container, is_results_volume);
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    assert!(
        out.starts_with(&format!("{results_mount}/")),
        "{out} not on {results_mount}"
    );
    assert!(args.contains(&"--exit-zero-on-verdict"), "{args:?}");
    let start_at = args[args.iter().position(|a| *a == "--start-at").unwrap() + 1];
    assert_eq!(start_at, "$(START_AT)");
    for variable in ["RUN_ID", "START_AT"] {
        assert_eq!(
            env_entry(container, variable)["valueFrom"]["configMapKeyRef"]["name"].as_str(),
            Some("drover-run")
        );
    }

    // The scenario in the ConfigMap is a valid drover scenario, under the key the path names,
    // and its API key variable comes from a Secret.
    let scenario_map = get(&all, "ConfigMap/drover-scenario");
    let file_name = scenario_path.file_name().unwrap().to_str().unwrap();
    let scenario_text = str_of(&scenario_map["data"][file_name]);
    let plan = drover::scenario::parse_with_env(scenario_text, scenario_path, &|_| {
        Some("test-key".into())
    })
    .unwrap_or_else(|e| panic!("the ConfigMap's scenario is invalid: {e}"));
    let key_variable = plan.targets[0].api_key_env.clone().expect("a key variable");
    let secret = &env_entry(container, &key_variable)["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["name"].as_str(), Some("drover-api-key"));
    assert!(secret["key"].as_str().is_some());
    // The plan splits over the Job's workers.
    let shard = drover::shard::Shard::new(0, completions as u32).unwrap();
    drover::scenario::apply_shard(plan, shard).expect("the scenario splits over the workers");

    // The run ConfigMap carries a start time drover accepts.
    let run = get(&all, "ConfigMap/drover-run");
    drover::shard::parse_start_at(str_of(&run["data"]["start_at"])).unwrap();
    assert!(run["data"]["run_id"].as_str().is_some());

    let claim = get(&all, "PersistentVolumeClaim/drover-results");
    assert!(list(&claim["spec"]["accessModes"])
        .iter()
        .any(|m| m.as_str() == Some("ReadWriteMany")));
}

#[test]
fn the_merge_job_reads_the_workers_results_folder() {
    let all = manifests();
    let workers = &get(&all, "Job/drover-workers")["spec"]["template"]["spec"];
    let worker = &list(&workers["containers"])[0];
    let worker_args: Vec<&str> = list(&worker["args"]).iter().map(str_of).collect();
    let worker_out = worker_args[worker_args.iter().position(|a| *a == "--out").unwrap() + 1];
    let worker_mount = mount_of(workers, worker, is_results_volume);

    let pod = &get(&all, "Job/drover-merge")["spec"]["template"]["spec"];
    let container = &list(&pod["containers"])[0];
    let args: Vec<&str> = list(&container["args"]).iter().map(str_of).collect();
    assert_eq!(args[0], "merge");
    let mount = mount_of(pod, container, is_results_volume);
    // Both see the volume at the same path, so the folder the workers wrote is the merge input.
    assert_eq!(mount, worker_mount);
    assert_eq!(args[1], worker_out);
    let output = args[args.iter().position(|a| *a == "-o").unwrap() + 1];
    assert!(output.starts_with(&format!("{worker_out}/")));
    assert!(
        !output.ends_with("/results.json"),
        "the merged file must not be taken for a shard"
    );
    // It starts with the workers and waits for them; the report and the archive go to the
    // same run folder, where the fetch pod sees them.
    let value_of = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    drover::scenario::schema::parse_duration(value_of("--wait")).unwrap();
    drover::scenario::schema::parse_duration(value_of("--max-start-skew")).unwrap();
    let report = value_of("--report");
    let archive = value_of("--archive");
    assert!(report.starts_with(&format!("{worker_out}/")), "{report}");
    assert!(
        archive.starts_with(&format!("{worker_out}/")) && archive.ends_with(".tar.gz"),
        "{archive}"
    );
    let fetch = &get(&all, "Pod/drover-fetch")["spec"];
    let fetch_container = &list(&fetch["containers"])[0];
    assert_eq!(mount_of(fetch, fetch_container, is_results_volume), mount);
    assert_eq!(
        env_entry(container, "RUN_ID")["valueFrom"]["configMapKeyRef"]["name"].as_str(),
        Some("drover-run")
    );
}

#[test]
fn the_dockerfile_is_multi_stage_and_runs_as_non_root() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(text.contains("COPY --from=build"));
    let user = instructions
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER instruction");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert_ne!(uid, "0");
    assert_ne!(uid, "root");
    // The manifests run as the image's user.
    let all = manifests();
    let pod = &get(&all, "Job/drover-workers")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsUser"]
            .as_i64()
            .map(|u| u.to_string()),
        Some(uid.to_string())
    );
    assert!(instructions
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT") && l.contains("drover")));
}

#[test]
fn the_ci_recipe_runs_the_scenario_and_gates_on_the_committed_baseline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/ci/perf-gate.yml")).unwrap();
    let workflow = &YamlLoader::load_from_str(&text).expect("valid YAML")[0];
    let scenario = str_of(&workflow["env"]["SCENARIO"]);
    let baseline = str_of(&workflow["env"]["BASELINE"]);
    assert!(
        root.join(scenario).is_file(),
        "{scenario} is in the repository"
    );
    assert!(root.join(baseline).is_file(), "{baseline} is committed");
    let steps = list(&workflow["jobs"]["perf-gate"]["steps"]);
    let run_lines: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    let position = |needle: &str| {
        run_lines
            .iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no step runs {needle}: {run_lines:?}"))
    };
    let (build, run, compare) = (
        position("cargo build --release"),
        position("drover run \"$SCENARIO\""),
        position("drover compare \"$BASELINE\""),
    );
    assert!(build < run && run < compare);
    // The JUnit publisher needs to create a check run.
    assert_eq!(str_of(&workflow["permissions"]["checks"]), "write");
    // A failed SLO (exit 7) still wrote results: the run step lets it through to the comparison
    // and records it; a last step fails the job on it, whatever the comparison said.
    let run_line = run_lines[run];
    assert!(run_line.contains("set +e") && run_line.contains("exit_code=$code"));
    assert!(run_line.contains("[ \"$code\" -ne 7 ]"), "{run_line}");
    let slo_step = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Fail on the SLO verdict"))
        .expect("a step that fails on the SLO verdict");
    assert_eq!(
        str_of(&slo_step["if"]),
        "always() && steps.run.outputs.exit_code == '7'"
    );
    assert!(str_of(&slo_step["run"]).contains("exit 7"));
    let run_id = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("drover run")))
        .and_then(|s| s["id"].as_str());
    assert_eq!(run_id, Some("run"));
    let compare_line = run_lines[compare];
    assert!(compare_line.contains("--markdown \"$GITHUB_STEP_SUMMARY\""));
    assert!(compare_line.contains("--junit"));
    // The key comes from a secret, never from the file.
    let run_step = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("drover run")))
        .unwrap();
    assert_eq!(
        str_of(&run_step["env"]["LLM_API_KEY"]),
        "${{ secrets.LLM_API_KEY }}"
    );
    // The report is uploaded whatever the verdict.
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"))
        })
        .expect("an upload step");
    assert_eq!(str_of(&upload["if"]), "always()");
    // The baseline is a results file of the scenario the workflow runs.
    let baseline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(baseline)).unwrap()).unwrap();
    assert_eq!(baseline["schema"], "drover.results/v1");
    assert_eq!(baseline["scenario"]["name"], "ci-gate");
}
