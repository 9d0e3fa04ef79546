//! Reports: the HTML and every SVG parse, every chart referenced exists, summary.md carries the
//! numbers of results.json, comparisons show every input on every chart, a run with no success
//! still renders, and `drover report` rejects bad input with exit 2.

use crate::common;

use std::path::Path;

use common::{drover, run_scenario, text};
use drover::report::{self, Report, ReportInput};
use drover::results::RunResults;

fn mock_scenario(ttft: &str, load: &str) -> String {
    format!(
        "[[targets]]\nname = \"mock\"\nmodel = \"m\"\n[targets.mock]\nttft = \"{ttft}\"\nitl = \"1ms\"\noutput_tokens = 6\n\n\
         [[classes]]\nname = \"short\"\nweight = 2\ninput_tokens = 8\n\n[[classes]]\nname = \"long\"\ninput_tokens = 64\n\n[load]\n{load}"
    )
}

fn single(results: RunResults) -> Report {
    Report {
        inputs: vec![ReportInput::new(results.scenario.name.clone(), results)],
        rollout: None,
        sweep: None,
    }
}

/// Parses report.html strictly and checks every in-page link and every chart's files.
fn check_html(dir: &Path, charts: &[String]) -> String {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let document = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("report.html is not well-formed: {e}"));
    let ids: std::collections::HashSet<&str> = document
        .descendants()
        .filter_map(|n| n.attribute("id"))
        .collect();
    for link in document.descendants().filter_map(|n| n.attribute("href")) {
        if let Some(id) = link.strip_prefix('#') {
            assert!(ids.contains(id), "link to #{id} has no target");
        } else {
            assert!(dir.join(link).is_file(), "link to {link} has no file");
        }
    }
    for chart in charts {
        let figure = document
            .descendants()
            .find(|n| n.attribute("id") == Some(&format!("chart-{chart}")))
            .unwrap_or_else(|| panic!("no figure for chart {chart}"));
        assert!(
            figure.descendants().any(|n| n.tag_name().name() == "svg"),
            "chart {chart} has no inline svg"
        );
        let svg = std::fs::read_to_string(dir.join(format!("charts/{chart}.svg"))).unwrap();
        let parsed = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{chart}.svg does not parse: {e}"));
        assert!(
            parsed
                .descendants()
                .filter(|n| n.tag_name().name() == "polyline" || n.tag_name().name() == "path")
                .count()
                > 0,
            "{chart}.svg draws no line"
        );
        let png = std::fs::read(dir.join(format!("charts/{chart}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{chart}.png"
        );
    }
    html
}

/// Reads a number as printed (grouping commas, percent sign) and the precision it was shown at.
fn printed(cell: &str) -> (f64, f64) {
    let plain: String = cell.chars().filter(|c| *c != ',' && *c != '%').collect();
    let decimals = plain.split('.').nth(1).map_or(0, str::len);
    (
        plain.parse().unwrap(),
        0.5 * 10f64.powi(-(decimals as i32)) + 1e-9,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_report_parses_and_matches_its_results() {
    let results = run_scenario(&mock_scenario(
        "5ms",
        "kind = \"open\"\nstages = [{ rate = 20, duration = \"1s\" }, { rate = 40, duration = \"1s\" }]\n",
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let written = report::write_report(dir.path(), &single(results.clone())).unwrap();
    assert_eq!(
        written.charts,
        [
            "ttft-percentiles",
            "e2e-percentiles",
            "ttft-cdf",
            "itl-cdf",
            "over-time",
            "latency-throughput"
        ]
    );
    let html = check_html(dir.path(), &written.charts);
    assert!(html.contains("No SLOs are defined"));
    // Self-contained: no scripts, no stylesheets or fonts or images fetched from anywhere.
    for fetch in ["<script", "<link", "<img", "@import", "url(", "src="] {
        assert!(!html.contains(fetch), "report.html contains {fetch}");
    }

    // summary.md's (all) row carries the numbers of results.json.
    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let header: Vec<&str> = markdown
        .lines()
        .find(|l| l.starts_with("| run |"))
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    let row: Vec<&str> = markdown
        .lines()
        .find(|l| l.contains("| (all) |"))
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let summary = &results.targets[0].summary;
    let checks = [
        ("TTFT p50", summary.latency_ms["ttft"].p50),
        ("TTFT p99", summary.latency_ms["ttft"].p99),
        ("ITL p50", summary.latency_ms["itl"].p50),
        ("E2E p99", summary.latency_ms["e2e"].p99),
        ("req/s", summary.throughput.requests_per_s),
        ("out tok/s", summary.throughput.output_tokens_per_s),
    ];
    for (column, expected) in checks {
        let (shown, tolerance) = printed(cell(column));
        assert!(
            (shown - expected).abs() <= tolerance,
            "{column}: {shown} vs {expected}"
        );
    }
    assert_eq!(
        cell("ok/sent"),
        format!("{}/{}", summary.requests.succeeded, summary.requests.sent)
    );
    // The two classes have rows of their own.
    assert!(markdown.contains("| mock | short |") && markdown.contains("| mock | long |"));
    // One point per stage on the latency–throughput chart, for TTFT and E2E.
    assert_eq!(results.targets[0].stages.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_success_renders_with_a_clear_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let results = run_scenario(&format!(
        "[[targets]]\nname = \"down\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\n[[classes]]\nname = \"c\"\ninput_tokens = 4\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 3\n"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let written = report::write_report(dir.path(), &single(results)).unwrap();
    assert!(
        written.charts.iter().all(|c| c == "over-time"),
        "{:?}",
        written.charts
    );
    let html = check_html(dir.path(), &written.charts);
    assert!(
        html.contains("completed no request successfully (3 sent); most common error: connect ×3")
    );
    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(markdown.contains("✗ target \"down\" completed no request successfully"));
    assert!(markdown.contains("| connect | 3 |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_shows_both_runs_on_every_chart_and_a_delta_table() {
    let load = "kind = \"closed\"\nusers = 2\nrequests = 40\n";
    // Priced alike but for a discount: the comparison's cost row shows both and the change.
    let priced = |ttft: &str, pricing: &str| {
        mock_scenario(ttft, load).replace(
            "model = \"m\"\n",
            &format!("model = \"m\"\npricing = {{ model = \"gpt-4.1\"{pricing} }}\n"),
        )
    };
    let before = run_scenario(&priced("10ms", ", discount = 0.5")).await;
    let after = run_scenario(&priced("30ms", "")).await;
    let dir = tempfile::tempdir().unwrap();
    let inputs_dir = dir.path().join("inputs");
    for (name, results) in [("before", &before), ("after", &after)] {
        report::json::write_results(&inputs_dir.join(name), results).unwrap();
    }
    let output = drover(
        dir.path(),
        &[
            "report",
            "inputs/before/results.json",
            "inputs/after/results.json",
            "--label",
            "before",
            "--label",
            "after",
            "--out",
            "cmp",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let out = dir.path().join("cmp");
    let charts = [
        "ttft-percentiles",
        "e2e-percentiles",
        "ttft-cdf",
        "itl-cdf",
        "over-time",
    ];
    let charts: Vec<String> = charts.iter().map(|c| c.to_string()).collect();
    let html = check_html(&out, &charts);
    for chart in &charts {
        let svg = std::fs::read_to_string(out.join(format!("charts/{chart}.svg"))).unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap();
        let legend: Vec<&str> = document
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for label in ["before", "after"] {
            assert!(
                legend.iter().any(|t| t.starts_with(label)),
                "{chart} has no {label} series: {legend:?}"
            );
        }
    }
    assert!(html.contains("Comparison against before"));
    let markdown = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let ttft_row = markdown
        .lines()
        .find(|l| l.starts_with("| TTFT p50 |"))
        .expect("delta table has TTFT p50");
    assert!(ttft_row.contains('+'), "TTFT grew: {ttft_row}");
    for metric in [
        "TTFT p99",
        "E2E p50",
        "E2E p99",
        "output tokens/s",
        "error rate",
        "cost per 1M output tokens",
    ] {
        assert!(markdown.contains(&format!("| {metric} |")), "{metric}");
    }
    assert!(markdown.contains("| Δ after |"));
    // Half price before, list price after: per output token the cost doubled.
    let per_million = |r: &RunResults| {
        r.targets[0]
            .summary
            .cost
            .as_ref()
            .unwrap()
            .per_million_output_tokens
    };
    let cost_row = markdown
        .lines()
        .find(|l| l.starts_with("| cost per 1M output tokens |"))
        .unwrap();
    assert_eq!(
        cost_row,
        format!(
            "| cost per 1M output tokens | {} | {} | +100.0% |",
            drover::units::money(per_million(&before)),
            drover::units::money(per_million(&after))
        )
    );
    assert!(
        markdown.contains("TTFT p50 of \"mock\": after is +"),
        "{markdown}"
    );
}

#[test]
fn report_rejects_bad_inputs_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("other.json"),
        "{\"schema\": \"something/v9\"}",
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.json"), "{\"schema\": ").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["report", "missing.json"],
            "missing.json: cannot read results",
        ),
        (
            &["report", "other.json"],
            "schema \"something/v9\" is not supported",
        ),
        (
            &["report", "broken.json"],
            "broken.json: not a drover results file: invalid JSON at line 1",
        ),
        (
            &["report", "other.json", "--label", "a", "--label", "b"],
            "2 --label given for 1 results files",
        ),
    ];
    for (args, message) in cases {
        let output = drover(dir.path(), args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            text(&output.stderr).contains(message),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

#[test]
fn csv_outputs_parse_and_match_the_results() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "name = \"csv\"\n[[targets]]\nname = \"mock\"\nmodel = \"m\"\npricing = { model = \"gpt-4.1\" }\n\
         [targets.mock]\nttft = \"1ms\"\nitl = \"1ms\"\noutput_tokens = 5\nfaults = { http_500 = 0.2 }\n\n\
         [[classes]]\nname = \"short, plain\"\ninput_tokens = 8\n\n[[classes]]\nname = \"long\"\ninput_tokens = 64\n\n\
         [load]\nkind = \"closed\"\nusers = 2\nrequests = 60\nwarmup_requests = 4\n",
    )
    .unwrap();
    let output = common::run_s_toml(dir.path(), &["--csv"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run = common::only_run_dir(&dir.path().join("out"));
    let results: RunResults =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let summary = &results.targets[0].summary;
    assert!(summary.requests.failed > 0, "the faults should fail some");

    // requests.csv: one row per finished request, warm-up included and marked.
    let mut reader = csv::Reader::from_path(run.join("requests.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        drover::export::CSV_COLUMNS
    );
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let measured: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[column("warmup")] == "false")
        .collect();
    assert_eq!(rows.len(), 60);
    assert_eq!(rows.len() - measured.len(), 4);
    assert_eq!(measured.len() as u64, summary.requests.sent);
    let ok = measured
        .iter()
        .filter(|r| &r[column("outcome")] == "ok")
        .count() as u64;
    assert_eq!(ok, summary.requests.succeeded);
    for class in &results.targets[0].classes {
        let sent = measured
            .iter()
            .filter(|r| r[column("class")] == class.name)
            .count() as u64;
        assert_eq!(sent, class.results.requests.sent, "{}", class.name);
    }
    let output_tokens: u64 = measured
        .iter()
        .filter(|r| &r[column("outcome")] == "ok")
        .map(|r| r[column("output_tokens")].parse::<u64>().unwrap())
        .sum();
    assert_eq!(output_tokens, summary.tokens.output);

    // groups.csv: the (all) row and a row per class, numbers exactly as in results.json.
    let mut reader = csv::Reader::from_path(run.join("groups.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().map(String::from).collect::<Vec<_>>(),
        drover::report::csv::columns()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let cell = |row: &csv::StringRecord, name: &str| -> String {
        row[header.iter().position(|h| h == name).unwrap()].to_string()
    };
    let groups = std::iter::once(("(all)", summary)).chain(
        results.targets[0]
            .classes
            .iter()
            .map(|c| (c.name.as_str(), &c.results)),
    );
    for ((class, group), row) in groups.zip(&rows) {
        assert_eq!(cell(row, "class"), class);
        assert_eq!(cell(row, "sent"), group.requests.sent.to_string());
        assert_eq!(cell(row, "failed"), group.requests.failed.to_string());
        for (column, value) in [
            ("ttft_p50_ms", group.latency_ms["ttft"].p50),
            (
                "e2e_corrected_p99_ms",
                group.latency_ms["e2e_corrected"].p99,
            ),
            ("output_tokens_per_s", group.throughput.output_tokens_per_s),
            ("cost_total", group.cost.as_ref().unwrap().total),
        ] {
            assert_eq!(
                cell(row, column).parse::<f64>().unwrap(),
                value,
                "{class} {column}"
            );
        }
    }

    // `drover report --csv` over two runs: a row per run, target and class.
    let output = drover(
        dir.path(),
        &[
            "report",
            run.join("results.json").to_str().unwrap(),
            run.join("results.json").to_str().unwrap(),
            "--label",
            "a",
            "--label",
            "b",
            "--csv",
            "--out",
            "both",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let mut reader = csv::Reader::from_path(dir.path().join("both/groups.csv")).unwrap();
    let runs: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert_eq!(runs, ["a", "a", "a", "b", "b", "b"]);
}

#[tokio::test]
async fn the_scenario_as_run_is_shown_as_toml_without_defaults_and_reads_back() {
    let results = run_scenario(&mock_scenario(
        "2ms",
        "kind = \"open\"\nrate = 100\nrequests = 10\n",
    ))
    .await;
    let text = drover::report::format::scenario_toml(&results.scenario.as_run);
    // Only what the file set: no unset fields, no defaults such as users or stages.
    assert!(!text.contains("null") && !text.contains("users"), "{text}");
    assert!(
        text.contains("[[classes]]") && text.contains("rate = 100"),
        "{text}"
    );
    // It is a scenario drover reads, the same one.
    let plan = drover::scenario::parse(&text, Path::new("as-run.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(plan.classes.len(), 2);
    assert_eq!(plan.targets[0].name, "mock");
    // report.html shows it.
    let dir = tempfile::tempdir().unwrap();
    report::write_report(dir.path(), &single(results)).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("[[classes]]") && !html.contains("&quot;dataset&quot;: null"));
}

#[test]
fn an_exported_run_gets_a_dot_per_request_and_an_unexported_one_no_scatter() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            "name = \"dots\"\n{}",
            mock_scenario("1ms", "kind = \"closed\"\nusers = 2\nrequests = 30\n")
        ),
    )
    .unwrap();
    let output = common::run_s_toml(dir.path(), &["--export-requests"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run = common::only_run_dir(&dir.path().join("out"));
    let svg = std::fs::read_to_string(run.join("charts/latency-scatter.svg")).unwrap();
    let document = roxmltree::Document::parse(&svg).unwrap();
    let dots = document
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    // 30 TTFT dots and 30 E2E dots, and the two legend marks.
    assert_eq!(dots, 62, "{dots}");
    // The same report from `drover report`, which reads requests.jsonl beside results.json.
    let output = drover(
        dir.path(),
        &[
            "report",
            run.join("results.json").to_str().unwrap(),
            "--out",
            "again",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(dir.path().join("again/charts/latency-scatter.svg").exists());

    let plain = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("s.toml"), plain.path().join("s.toml")).unwrap();
    let output = common::run_s_toml(plain.path(), &[]);
    assert_eq!(output.status.code(), Some(0));
    let run = common::only_run_dir(&plain.path().join("out"));
    assert!(!run.join("charts/latency-scatter.svg").exists());
}
