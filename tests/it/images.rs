//! Synthetic images (`images = { count, width, height }`): every request carries them, as an
//! OpenAI `image_url` part, an Anthropic image block or a Responses `input_image`, live and
//! through the Batch API; the mock counts them (its `/metrics`) and bills them by the provider's
//! formula, and the spend projection includes them.

use crate::common::{drover, only_results, run_s_toml, text};

fn scenario(api: &str, mode: &str, requests: u32) -> String {
    format!(
        r#"
[[targets]]
name = "vision"
model = "m"
api = "{api}"
mode = "{mode}"
server_metrics = {{ every = "100ms", keep = ["drover_mock_images_total"] }}
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 8
batch_processing_time = "200ms"

[[classes]]
name = "look"
input_tokens = 32
max_tokens = 8
images = {{ width = 512, height = 512 }}

[load]
kind = "closed"
users = 4
requests = {requests}
"#
    )
}

/// Runs a scenario and returns the results of its one target.
fn run(dir: &std::path::Path, scenario: &str) -> serde_json::Value {
    std::fs::write(dir.join("s.toml"), scenario).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let output = run_s_toml(dir, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    only_results(&dir.join("out"))["targets"][0].clone()
}

#[test]
fn every_request_carries_its_image_and_the_server_bills_it_by_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    // (api, mode, image tokens of a 512 × 512 image by that provider's formula)
    for (api, mode, image_tokens) in [
        ("openai", "stream", 255),
        ("anthropic", "stream", 350),
        ("responses", "stream", 255),
        ("openai", "complete", 255),
        ("openai", "batch-api", 255),
    ] {
        let target = run(dir.path(), &scenario(api, mode, 20));
        let summary = &target["summary"];
        let what = format!("{api} {mode}: {summary}");
        assert_eq!(summary["requests"]["succeeded"], 20, "{what}");
        let inputs = &summary["inputs"];
        assert_eq!(inputs["images"], 20, "{what}");
        assert_eq!(inputs["image_tokens"], 20 * image_tokens, "{what}");
        assert!(
            inputs["request_bytes"].as_u64().unwrap() > 20 * 1000,
            "{what}"
        );
        // The server's usage: 32 prompt words and the image, per request.
        assert_eq!(
            summary["tokens"]["input"],
            20 * (32 + image_tokens),
            "{what}"
        );
        assert_eq!(summary["tokens"]["source_usage"], 20, "{what}");
        // Counted server-side: the mock's own counter on its /metrics page (live modes; the
        // Batch API's requests never pass its live route).
        if mode != "batch-api" {
            let counted = target["server_metrics"]["kept"]["drover_mock_images_total"]
                .as_array()
                .and_then(|points| points.last())
                .map(|point| point[1].as_f64().unwrap());
            assert_eq!(counted, Some(20.0), "{what}");
        }
    }
}

#[test]
fn the_spend_projection_includes_the_images() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), scenario("openai", "stream", 20)).unwrap();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // 20 requests × (32 prompt tokens + 7 of the chat format + 255 of the image).
    assert!(
        stdout.contains("20 requests, 5,880 input + 160 output tokens"),
        "{stdout}"
    );
    assert!(stdout.contains("images 1 × 512×512"), "{stdout}");
}

#[test]
fn image_settings_a_target_cannot_take_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, said) in [
        (
            "images = { width = 512, height = 512 }",
            "images = { width = 0, height = 512 }",
            "classes[0].images width must be 1 to 4096 pixels (got 0)",
        ),
        (
            "images = { width = 512, height = 512 }",
            "images = { width = 512, height = 512, format = \"gif\" }",
            "classes[0].images.format synthetic images are drawn as \"png\" only",
        ),
        (
            "images = { width = 512, height = 512 }",
            "images = { width = 512, height = 512, detail = \"medium\" }",
            "classes[0].images.detail must be \"low\", \"high\" or \"auto\"",
        ),
        (
            "api = \"openai\"",
            "api = \"completions\"",
            "classes[0].images images need a chat API",
        ),
    ] {
        let text_of_scenario = scenario("openai", "stream", 2).replace(from, to);
        std::fs::write(dir.path().join("s.toml"), &text_of_scenario).unwrap();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{to}: {stderr}");
        assert!(stderr.contains(said), "{to}: {stderr}");
    }
}

/// A PNG of `width` × `height` (one grey).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer
        .write_image_data(&vec![128u8; (width * height) as usize])
        .unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn dataset_records_carry_their_images_and_bad_ones_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.png"), png(512, 512)).unwrap();
    std::fs::write(
        dir.path().join("data.jsonl"),
        "{\"messages\": [{\"role\": \"user\", \"content\": \"describe this photo\"}], \"images\": [\"photo.png\"]}\n",
    )
    .unwrap();
    let scenario = scenario("openai", "stream", 10).replace(
        "input_tokens = 32\nmax_tokens = 8\nimages = { width = 512, height = 512 }",
        "dataset = \"data.jsonl\"\nmax_tokens = 8",
    );
    let target = run(dir.path(), &scenario);
    let summary = &target["summary"];
    // The server's usage: 3 words and the 512 × 512 image (255 tokens) per request.
    assert_eq!(summary["tokens"]["input"], 10 * (3 + 255), "{summary}");
    let counted = target["server_metrics"]["kept"]["drover_mock_images_total"]
        .as_array()
        .and_then(|points| points.last())
        .map(|point| point[1].as_f64().unwrap());
    assert_eq!(counted, Some(10.0));
    // The projection counts the image too: 10 × (3 words + 7 of the chat format + 255).
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert!(
        text(&output.stdout).contains("10 requests, 2,650 input"),
        "{}",
        text(&output.stdout)
    );

    std::fs::write(dir.path().join("notes.txt"), "not a picture").unwrap();
    let big = std::fs::File::create(dir.path().join("big.png")).unwrap();
    big.set_len(21 * 1024 * 1024).unwrap();
    for (image, said) in [
        ("notes.txt", "data.jsonl:1: images[0]: "),
        ("notes.txt", "notes.txt is not an image drover can read"),
        ("big.png", "more than the 20971520 an image may have"),
        ("missing.png", "images[0]: cannot read"),
    ] {
        std::fs::write(
            dir.path().join("data.jsonl"),
            format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}], \"images\": [\"{image}\"]}}\n"),
        )
        .unwrap();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{image}: {stderr}");
        assert!(stderr.contains(said), "{image}: {stderr}");
    }
}
