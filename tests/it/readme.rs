//! README renders as meant: parsed as Markdown (pulldown-cmark, with tables), no table is split
//! by a blank line (its later rows would render as a paragraph of pipes), no code fence is left
//! open (the rest of the file would render as code), and every `#anchor` link names a heading.

use std::collections::BTreeSet;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// What is wrong with a Markdown text, each with its line.
fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut anchors = BTreeSet::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new_ext(text, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::Paragraph) if text[range.clone()].starts_with('|') => {
                problems.push(format!(
                    "line {}: table rows outside a table (a blank line splits the table above, or its header is missing)",
                    line_of(text, range.start)
                ));
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                let block = text[range.clone()].trim_end();
                let last = block.lines().last().unwrap_or("").trim_start();
                let opened_and_closed = block.lines().count() > 1
                    && (last.starts_with("```") || last.starts_with("~~~"));
                if !opened_and_closed {
                    problems.push(format!(
                        "line {}: a code fence that is never closed",
                        line_of(text, range.start)
                    ));
                }
            }
            Event::Start(Tag::Heading { .. }) => {
                heading = Some(String::new());
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    anchors.insert(anchor_of(&h));
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) if dest_url.starts_with('#') => {
                links.push((dest_url[1..].to_string(), line_of(text, range.start)));
            }
            _ => {}
        }
    }
    for (anchor, line) in links {
        if !anchors.contains(&anchor) {
            problems.push(format!(
                "line {line}: a link to #{anchor}, which no heading has"
            ));
        }
    }
    problems
}

#[test]
fn the_readme_renders_as_meant() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let problems = problems(&readme);
    assert!(problems.is_empty(), "README.md:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_split_table_an_open_fence_and_a_dead_link() {
    let good = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```bash\nls\n```\n\nSee [the title](#title).\n";
    assert!(problems(good).is_empty(), "{:?}", problems(good));
    let split = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n";
    assert!(problems(split)[0].starts_with("line 5: table rows outside a table"));
    let open = "text\n\n```bash\nls\n\n## Later\n";
    assert!(problems(open)[0].starts_with("line 3: a code fence that is never closed"));
    let dead = "# One\n\n[two](#two)\n";
    assert_eq!(
        problems(dead),
        ["line 3: a link to #two, which no heading has"]
    );
    assert_eq!(
        anchor_of("Overrides: `--set` and `DROVER_SET_*`"),
        "overrides---set-and-drover_set_"
    );
}
