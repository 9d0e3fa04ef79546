//! Where a test lives decides what runs beside it: tests of this binary run in parallel with each
//! other, tests of the `timed` binary one at a time with nothing else of the suite beside them.
//! This keeps that true: every test in `tests/timed` takes `TIMING_LOCK` first thing, and no test
//! here takes it (here it would serialise nothing that matters and hide a misplaced test).

use std::path::Path;

/// Each test function of a file: (line of its `fn`, name, its first three lines of body).
fn tests_of(text: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tests = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let attribute = line.trim_start();
        if !(attribute.starts_with("#[test]") || attribute.starts_with("#[tokio::test")) {
            continue;
        }
        let Some(offset) = lines[i + 1..].iter().position(|l| l.contains("fn ")) else {
            continue;
        };
        let at = i + 1 + offset;
        let name = lines[at]
            .split("fn ")
            .nth(1)
            .and_then(|rest| rest.split('(').next())
            .unwrap_or_default()
            .to_string();
        let end = (at + 4).min(lines.len());
        tests.push((at + 1, name, lines[at + 1..end].join("\n")));
    }
    tests
}

fn rust_files(folder: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (
                format!(
                    "tests/{folder}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ),
                text,
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn timed_tests_run_alone() {
    let mut misplaced = Vec::new();
    let mut timed = 0;
    for (file, text) in rust_files("timed") {
        for (line, name, opening) in tests_of(&text) {
            timed += 1;
            if !opening.contains("TIMING_LOCK") {
                misplaced.push(format!(
                    "{file}:{line}: {name} does not take TIMING_LOCK first"
                ));
            }
        }
    }
    for (file, text) in rust_files("it") {
        for (line, name, opening) in tests_of(&text) {
            if opening.contains("TIMING_LOCK") {
                misplaced.push(format!(
                    "{file}:{line}: {name} takes TIMING_LOCK: a timed test belongs in tests/timed"
                ));
            }
        }
    }
    assert!(timed >= 30, "only {timed} timed tests found");
    assert!(misplaced.is_empty(), "{}", misplaced.join("\n"));
}

#[test]
fn the_checker_finds_tests_and_their_opening_lines() {
    // The lock's name is put together, so that this test's own opening lines do not name it.
    let lock = ["TIMING", "LOCK"].join("_");
    let text = format!(
        "#[test]\nfn plain() {{\n    let _serial = common::{lock}.blocking_lock();\n}}\n\n\
         #[tokio::test(flavor = \"multi_thread\")]\nasync fn timed() {{\n    work();\n}}\n"
    );
    let tests = tests_of(&text);
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0].0, 2);
    assert_eq!(tests[0].1, "plain");
    assert!(tests[0].2.contains(&lock));
    assert_eq!(tests[1].1, "timed");
    assert!(!tests[1].2.contains(&lock));
}
