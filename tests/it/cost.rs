//! Cost end to end: a priced run's results and summary, a relay billing in another currency, the
//! pricing errors a scenario can make, and `drover audit` from the command line.

use crate::common;

use std::path::Path;

use common::{drover, run_scenario_in, text};

fn scenario(pricing: &str, cost: &str) -> String {
    format!(
        r#"
name = "priced"
[[targets]]
name = "official"
model = "mock-llm"
mode = "complete"
pricing = {{ model = "gpt-4.1" }}
[targets.mock]
ttft = "1ms"
itl = "1ms"
output_tokens = 20

[[targets]]
name = "relay"
model = "mock-llm"
mode = "stream"
{pricing}
[targets.mock]
ttft = "1ms"
itl = "1ms"
output_tokens = 20

[[targets]]
name = "unpriced"
model = "mock-llm"
[targets.mock]
ttft = "1ms"
itl = "1ms"
output_tokens = 20

[[classes]]
name = "c"
input_tokens = 100
max_tokens = 20

[load]
kind = "closed"
users = 2
requests = 10
{cost}
"#
    )
}

#[tokio::test]
async fn priced_targets_cost_their_usage_at_list_and_relay_rates() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        r#"pricing = { model = "gpt-4.1", bill_currency = "CNY", bill_rate = 1.0 }"#,
        "[cost]\nexchange_rates = { CNY = 7.3 }\nprojection = { requests_per_day = 1000 }",
    );
    let results = run_scenario_in(dir.path(), &text).await;
    let official = &results.targets[0].summary;
    let cost = official.cost.as_ref().expect("priced");
    assert_eq!(official.requests.succeeded, 10);
    assert_eq!(official.tokens.source_usage, 10, "the mock reports usage");
    // GPT-4.1 list prices: $2 per 1M input, $8 per 1M output.
    let expected = (official.tokens.input as f64 * 2.0 + official.tokens.output as f64 * 8.0) / 1e6;
    assert!(official.tokens.input > 0 && official.tokens.output == 200);
    assert!(
        (cost.total - expected).abs() < 1e-12,
        "{} vs {expected}",
        cost.total
    );
    assert_eq!(cost.currency, "USD");
    assert_eq!(cost.requests_priced, 10);
    assert!((cost.per_request - expected / 10.0).abs() < 1e-12);
    let projection = cost.projection.as_ref().unwrap();
    assert!((projection.per_day - expected / 10.0 * 1000.0).abs() < 1e-9);
    assert!((projection.per_month - projection.per_day * 30.0).abs() < 1e-9);
    // The relay bills ¥1 per $1 of list price; at ¥7.3 per $1 that is a 7.3th of the list.
    let relay = &results.targets[1].summary;
    let relay_expected =
        (relay.tokens.input as f64 * 2.0 + relay.tokens.output as f64 * 8.0) / 1e6 / 7.3;
    let relay_cost = relay.cost.as_ref().unwrap().total;
    assert!((relay_cost - relay_expected).abs() < 1e-12, "{relay_cost}");
    // Its "discount" is 0 (it bills the list price, in yuan), but against the official price
    // paid at the market rate it saves 1 − 1/7.3 = 86.3%; the official target saves nothing.
    let saving = relay.cost.as_ref().unwrap().saving.unwrap();
    assert!((saving - (1.0 - 1.0 / 7.3)).abs() < 1e-9, "{saving}");
    assert_eq!(relay.cost.as_ref().unwrap().discount, 0.0);
    assert_eq!(cost.saving, Some(0.0));
    // Class totals add up to the target's.
    let class_cost = results.targets[0].classes[0].results.cost.as_ref().unwrap();
    assert!((class_cost.total - cost.total).abs() < 1e-12);
    // Without an entry in the table and without pricing.model, a target is unpriced.
    assert!(results.targets[2].summary.cost.is_none());
    let spend = results.spend.as_ref().unwrap();
    assert!((spend.total - (cost.total + relay_cost)).abs() < 1e-12);
    assert_eq!((spend.targets_priced, spend.targets_unpriced), (2, 1));
    let pricing = results.pricing.as_ref().unwrap();
    assert!(pricing.as_of.is_some() && pricing.table.contains("default.toml"));
    let summary = drover::report::terminal::summary(&results);
    assert!(
        summary.contains("cost in USD of the successful requests"),
        "{summary}"
    );
    assert!(summary.contains("unpriced"), "{summary}");
    let relay_row = summary
        .lines()
        .find(|l| l.starts_with("relay") && l.contains("(all)") && l.contains("gpt-4.1"))
        .unwrap_or_else(|| panic!("{summary}"));
    let cells = relay_row.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(cells.contains("gpt-4.1 0.0% 86.3% saved"), "{relay_row}");
    assert!(
        summary.contains("the measured requests cost")
            && summary.contains("over 2 priced target(s) (1 unpriced)"),
        "{summary}"
    );
    assert!(
        summary.contains("per day/month: projected to 1,000 requests per day"),
        "{summary}"
    );
}

/// A reasoning model priced with its own reasoning price: each answer's 10 reasoning tokens (of
/// 40, per the mock's usage details) cost $1 per 1M, its 30 answer tokens $4 per 1M.
#[tokio::test]
async fn reasoning_tokens_are_priced_at_their_own_price() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name = "reasoning-priced"
[[targets]]
name = "reasoner"
model = "mock-reasoner"
mode = "stream"
pricing = { model = "thinker" }
[targets.mock]
ttft = "1ms"
itl = "1ms"
output_tokens = 40
reasoning_tokens = 10

[[classes]]
name = "c"
input_tokens = 100
max_tokens = 40

[load]
kind = "closed"
users = 2
requests = 10

[cost.models."thinker"]
input = 0.5
output = 4.0
reasoning_output = 1.0
"#;
    let results = run_scenario_in(dir.path(), text).await;
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.succeeded, 10);
    assert_eq!(summary.tokens.output, 400);
    let answers = summary.answers.as_ref().expect("answer details");
    assert_eq!(answers.reasoning_tokens, 100, "{answers:?}");
    let cost = summary.cost.as_ref().expect("priced");
    let input = summary.tokens.input as f64 * 0.5 / 1e6;
    let output = (300.0 * 4.0 + 100.0 * 1.0) / 1e6;
    assert!((cost.input - input).abs() < 1e-12, "{cost:?}");
    assert!(
        (cost.output - output).abs() < 1e-12,
        "{} vs {output}",
        cost.output
    );
    assert!((cost.total - (input + output)).abs() < 1e-12);
}

fn error_of(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("s.toml"), text).unwrap();
    let output = drover(dir, &["validate", "s.toml"], &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        common::text(&output.stdout)
    );
    common::text(&output.stderr)
}

#[test]
fn pricing_mistakes_name_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = error_of(
        dir.path(),
        &scenario(r#"pricing = { model = "gpt-9" }"#, ""),
    );
    assert!(
        unknown.contains("s.toml:17:21:")
            && unknown.contains("targets[1].pricing.model")
            && unknown.contains("\"gpt-9\" is not in the pricing table"),
        "{unknown}"
    );
    let no_rate = error_of(
        dir.path(),
        &scenario(
            r#"pricing = { model = "gpt-4.1", bill_currency = "CNY" }"#,
            "",
        ),
    );
    assert!(no_rate.contains("no exchange rate for CNY"), "{no_rate}");
    let bad_discount = error_of(
        dir.path(),
        &scenario(r#"pricing = { model = "gpt-4.1", discount = 1.5 }"#, ""),
    );
    assert!(
        bad_discount.contains("targets[1].pricing.discount must be a fraction"),
        "{bad_discount}"
    );
    let two_bases = error_of(
        dir.path(),
        &scenario(
            "",
            "[cost]\nprojection = { requests_per_day = 1, tokens_per_day = 2 }",
        ),
    );
    assert!(
        two_bases.contains("cost.projection set exactly one of"),
        "{two_bases}"
    );
    std::fs::write(
        dir.path().join("prices.toml"),
        "currency = \"USD\"\n[models.x]\ninput = \"cheap\"\n",
    )
    .unwrap();
    let bad_table = error_of(
        dir.path(),
        &scenario("", "[cost]\npricing = \"prices.toml\""),
    );
    assert!(
        bad_table.contains("prices.toml:3:9: invalid type"),
        "{bad_table}"
    );
}

#[test]
fn audit_prices_the_fixture_log_and_lists_bad_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = drover(
        root,
        &[
            "audit",
            "tests/fixtures/audit-log.jsonl",
            "--batch-threshold",
            "1h",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for expected in [
        "9 lines: 4 priced, 1 unpriced, 4 malformed (skipped)",
        "batch candidates (can wait ≥ 1h): 2 requests; streaming: 2",
        "log covers 1.00 days (timestamps)",
        "routing saves 0.450 per month (2.0% of all-streaming)",
        "line 4: invalid JSON",
        "line 9: \"output_tokens\" is not a whole number of tokens (-5)",
        "unpriced: 1 requests for model \"mystery-model\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let output = drover(root, &["audit", "no-such-log.jsonl"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no-such-log.jsonl: cannot read log"));
    let output = drover(
        root,
        &[
            "audit",
            "tests/fixtures/audit-log.jsonl",
            "--currency",
            "EUR",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no exchange rate for USD"));
}

#[test]
fn the_batch_vs_stream_scenario_compares_modes_and_a_routed_policy_in_one_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = drover(
        root,
        &[
            "run",
            "scenarios/batch-vs-stream.toml",
            "--no-progress",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let table_start = stdout
        .find("latency, speed and cost side by side")
        .unwrap_or_else(|| panic!("no comparison table in:\n{stdout}"));
    let table = &stdout[table_start..];
    let results_path = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path().join("results.json"))
        .find(|p| p.exists())
        .unwrap();
    let results: drover::results::RunResults =
        serde_json::from_str(&std::fs::read_to_string(results_path).unwrap()).unwrap();
    let mut costs = Vec::new();
    for (name, mode, discount) in [
        ("stream", "stream", "0.0%"),
        ("relay-batch", "complete", "20.0%"),
        ("batch-api", "batch-api", "50.0%"),
    ] {
        let target = results.targets.iter().find(|t| t.name == name).unwrap();
        assert_eq!(target.mode, mode);
        let summary = &target.summary;
        assert_eq!(summary.requests.sent, 300, "{name}");
        let cost = summary.cost.as_ref().unwrap();
        costs.push(cost.per_million_output_tokens);
        // The row printed for the target carries the results file's numbers.
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")) && l.contains("(all)"))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"));
        for cell in [
            mode.to_string(),
            discount.to_string(),
            drover::units::money(cost.total),
            drover::units::money(cost.per_million_output_tokens),
            drover::units::rate(summary.throughput.output_tokens_per_s),
            drover::units::ms(summary.latency_ms["e2e"].p50),
        ] {
            assert!(row.contains(&cell), "{cell} not in {row}");
        }
    }
    // Per output token, the Batch API is the cheapest and streaming the dearest.
    assert!(costs[2] < costs[1] && costs[1] < costs[0], "{costs:?}");
    assert!(!results.targets[2].batches.is_empty());

    // The same trade-off for Claude: Message Batches at half the streamed price per output
    // token, every batch ended.
    let claude = |name: &str| results.targets.iter().find(|t| t.name == name).unwrap();
    let (stream, batched) = (claude("claude-stream"), claude("claude-batch-api"));
    assert_eq!(batched.mode, "batch-api");
    assert_eq!(batched.summary.requests.sent, 300);
    assert_eq!(batched.batches.len(), 3);
    assert!(batched.batches.iter().all(|b| b.status == "ended"));
    let (stream_cost, batch_cost) = (
        stream.summary.cost.as_ref().unwrap(),
        batched.summary.cost.as_ref().unwrap(),
    );
    assert_eq!(batch_cost.discount, 0.5);
    assert!(
        batch_cost.per_million_output_tokens < stream_cost.per_million_output_tokens,
        "{batch_cost:?} vs {stream_cost:?}"
    );
    assert!(table.lines().any(|l| l.starts_with("claude-batch-api ")
        && l.contains("batch-api")
        && l.contains("50.0%")));

    // The routed policy: its rules send the class that is not user-facing through the Batch
    // API and stream the other; each part is priced as its mode, and the blend lies between.
    let routed = results.targets.iter().find(|t| t.name == "routed").unwrap();
    assert_eq!(routed.mode, "routed (stream + batch-api)");
    let route = |name: &str| {
        routed
            .classes
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no class {name}"))
    };
    assert_eq!(route("summarize").route.as_deref(), Some("batch-api"));
    assert_eq!(route("classify").route.as_deref(), Some("stream"));
    assert_eq!(
        route("summarize").results.cost.as_ref().unwrap().discount,
        0.5
    );
    assert_eq!(
        route("classify").results.cost.as_ref().unwrap().discount,
        0.0
    );
    assert!(route("classify").results.latency_ms.contains_key("ttft"));
    assert!(!route("summarize").results.latency_ms.contains_key("ttft"));
    assert_eq!(
        routed.batches.iter().map(|b| b.requests).sum::<u64>(),
        route("summarize").results.requests.sent
    );
    assert_eq!(routed.summary.requests.sent, 300);
    let routed_cost = routed.summary.cost.as_ref().unwrap();
    let class_sum: f64 = routed
        .classes
        .iter()
        .map(|c| c.results.cost.as_ref().unwrap().total)
        .sum();
    assert!((routed_cost.total - class_sum).abs() < 1e-9);
    assert!(routed_cost.discount > 0.0 && routed_cost.discount < 0.5);
    let row = table
        .lines()
        .find(|l| l.starts_with("routed ") && l.contains("summarize"))
        .unwrap();
    assert!(row.contains("batch-api") && row.contains("50.0%"), "{row}");
}

/// The rows of the terminal's cost table: from its header line to the first line that is not a
/// row (cells are separated by at least two spaces).
fn terminal_cost_rows(stdout: &str) -> Vec<Vec<String>> {
    let start = stdout.find("latency, speed and cost side by side").unwrap();
    stdout[start..]
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("per day/month") && !l.starts_with("the measured"))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The rows of summary.md's cost table (after its header and alignment rows).
fn markdown_cost_rows(markdown: &str) -> Vec<Vec<String>> {
    let start = markdown
        .find("## Cost:")
        .expect("summary.md has no cost section");
    markdown[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The rows of report.html's cost table, read with a strict XML parser.
fn html_cost_rows(html: &str) -> Vec<Vec<String>> {
    let body = html.trim_start_matches("<!DOCTYPE html>");
    let document = roxmltree::Document::parse(body).expect("report.html is well-formed");
    let section = document
        .descendants()
        .find(|n| n.attribute("id") == Some("cost"))
        .expect("report.html has no cost section");
    let table = section
        .descendants()
        .find(|n| n.has_tag_name("tbody"))
        .unwrap();
    table
        .children()
        .filter(|n| n.has_tag_name("tr"))
        .map(|row| {
            row.children()
                .filter(|n| n.has_tag_name("td"))
                .map(|cell| cell.text().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_batch_vs_stream_reports_show_every_cost_figure_of_the_terminal_and_a_cost_chart() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = drover(
        root,
        &[
            "run",
            "scenarios/batch-vs-stream.toml",
            "--no-progress",
            "--set",
            "load.requests=60",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let run_dir = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("results.json").exists())
        .unwrap();
    let results: drover::results::RunResults =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    let terminal = terminal_cost_rows(&stdout);
    let markdown =
        markdown_cost_rows(&std::fs::read_to_string(run_dir.join("summary.md")).unwrap());
    let html = html_cost_rows(&std::fs::read_to_string(run_dir.join("report.html")).unwrap());
    // Six targets, each with its two classes: 18 rows, the same in all three views.
    assert_eq!(terminal.len(), 18, "{terminal:#?}");
    assert_eq!(markdown, terminal);
    assert_eq!(html, terminal);

    // Every row carries its group's cost from results.json.
    for target in &results.targets {
        let groups = std::iter::once(("(all)", &target.summary))
            .chain(target.classes.iter().map(|c| (c.name.as_str(), &c.results)));
        for (class, group) in groups {
            let row = terminal
                .iter()
                .find(|r| r[0] == target.name && r[1] == class)
                .unwrap_or_else(|| panic!("no row for {}/{class}", target.name));
            let cost = group.cost.as_ref().unwrap();
            let projection = cost.projection.as_ref().unwrap();
            let money = drover::units::money;
            // priced as, discount, vs official, cost, per request, per 1M out, per day, month.
            assert_eq!(row[7], cost.model);
            assert_eq!(row[8], drover::units::percent(cost.discount));
            assert!(row[9].ends_with("saved"), "{row:?}");
            assert_eq!(row[10].trim_start_matches('~'), money(cost.total));
            assert_eq!(row[11], money(cost.per_request));
            assert_eq!(row[12], money(cost.per_million_output_tokens));
            assert_eq!(row[13], money(projection.per_day));
            assert_eq!(row[14], money(projection.per_month));
        }
    }
    // The notes under the table too: the projection's basis and the run's spend.
    let summary_md = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    let spend = results.spend.as_ref().unwrap();
    for note in [
        "per day/month: projected to 1,000,000 requests per day (30-day month)".to_string(),
        format!(
            "the measured requests cost {} USD",
            drover::units::money(spend.total)
        ),
    ] {
        assert!(stdout.contains(&note), "terminal lacks {note}");
        assert!(summary_md.contains(&note), "summary.md lacks {note}");
    }

    // The cost chart: a line per priced target, drawn, linked and inlined.
    assert!(run_dir.join("charts/cost.svg").exists());
    assert!(run_dir.join("charts/cost.png").exists());
    assert!(summary_md.contains("(charts/cost.svg)"));
    let report_html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(report_html.contains("id=\"chart-cost\""));
    let svg = std::fs::read_to_string(run_dir.join("charts/cost.svg")).unwrap();
    for target in &results.targets {
        assert!(
            svg.contains(&target.name),
            "{} not in the cost chart",
            target.name
        );
    }
}
