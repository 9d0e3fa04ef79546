//! The layering rule of ARCHITECTURE.md, enforced: every module of the library sits at one
//! place in [`ORDER`], and a file imports (`crate::…`, or `super::` up to the crate root) only
//! its own top-level module and modules placed before it. Test code (`#[cfg(test)]` items),
//! comments and string literals are not imports. Nothing below the workflows prints: warnings
//! travel in results or through the run's notice sink. There is no allow-list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest layer first (the same order as `src/lib.rs`).
const ORDER: &[(&str, &str)] = &[
    ("units", "leaves"),
    ("stats", "leaves"),
    ("redact", "leaves"),
    ("timer", "leaves"),
    ("tokenizer", "leaves"),
    ("retry_after", "leaves"),
    ("shard", "leaves"),
    ("notice", "leaves"),
    ("record", "vocabulary"),
    ("cost", "vocabulary"),
    ("results", "vocabulary"),
    ("hist", "vocabulary"),
    ("slo", "vocabulary"),
    ("protocol", "vocabulary"),
    ("workload", "inputs"),
    ("mock", "inputs"),
    ("scenario", "plan"),
    ("traffic", "traffic model"),
    ("export", "execution"),
    ("metrics", "execution"),
    ("spend", "execution"),
    ("resources", "execution"),
    ("driver", "execution"),
    ("compare", "analysis and rendering"),
    ("report", "analysis and rendering"),
    ("history", "analysis and rendering"),
    ("app", "workflows"),
    ("fuzzing", "workflows"),
];

/// Files of the binary (`src/main.rs` and what it declares): above every layer.
const BINARY: &[&str] = &["main.rs", "cli"];

/// Modules that may print (the workflows and the binary).
const MAY_PRINT: &[&str] = &["app", "fuzzing"];

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|(name, _)| *name == module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, without the contents of string and char literals, and
/// without `#[cfg(test)]` items. Lines stay where they were (a removed comment or string keeps
/// its line breaks), so that functions can be measured on it.
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_lines(&mut code, &chars[start..i.min(chars.len())]);
        } else if c == 'r'
            && (next == Some('#') || next == Some('"'))
            && !ident_char(prev(&chars, i))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                code.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            code.push_str("\"\"");
            keep_lines(&mut code, &chars[i..j.min(chars.len())]);
            i = j;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            code.push_str("\"\"");
            keep_lines(&mut code, &chars[start..i.min(chars.len())]);
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('"', '\''); a lifetime ('a) has no closing quote there.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            code.push_str("' '");
            i += 1;
        } else {
            code.push(c);
            i += 1;
        }
    }
    without_test_items(&code)
}

/// One line break in `code` for each in `skipped`.
fn keep_lines(code: &mut String, skipped: &[char]) {
    code.extend(skipped.iter().filter(|c| **c == '\n'));
}

fn prev(chars: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        chars[i - 1]
    }
}

/// Whether `code` has `word` not preceded by an identifier character (`eprintln!` is not
/// `println!`).
fn contains_word(code: &str, word: &str) -> bool {
    code.match_indices(word)
        .any(|(at, _)| !code[..at].chars().next_back().is_some_and(ident_char))
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `code` without each item that follows a `#[cfg(test)]`: up to its `;`, or its braced body.
fn without_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = match (item.find('{'), item.find(';')) {
            (Some(brace), Some(semi)) if semi < brace => semi + 1,
            (Some(brace), _) => {
                let mut depth = 0;
                let mut end = item.len();
                for (offset, c) in item[brace..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = brace + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(semi)) => semi + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The module path of a file under `src/` (`driver/batch/mod.rs` → `["driver", "batch"]`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules a file's code names through `crate::` or `super::` paths.
fn imported_modules(code: &str, own_path: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let starts_word = i == 0 || !ident_char(bytes[i - 1] as char);
        let rest = &code[i..];
        if starts_word && rest.starts_with("crate::") {
            collect_heads(&rest["crate::".len()..], &mut found);
            i += "crate::".len();
        } else if starts_word && rest.starts_with("super::") {
            // Climb: each `super::` leaves one level of the file's module path.
            let mut depth = own_path.len();
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("super::") {
                depth = depth.saturating_sub(1);
                tail = after;
            }
            if depth == 0 {
                collect_heads(tail, &mut found);
            }
            i += rest.len() - tail.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// The first segment of a path (`driver::run` → `driver`), or of each path of a use group
/// (`{driver::run, metrics}` → `driver`, `metrics`).
fn collect_heads(path: &str, found: &mut BTreeSet<String>) {
    let path = path.trim_start();
    if let Some(group) = path.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (offset, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    head_of(&group[start..offset], found);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    head_of(&group[start..offset], found);
                    start = offset + 1;
                }
                _ => {}
            }
        }
    } else {
        head_of(path, found);
    }
}

fn head_of(path: &str, found: &mut BTreeSet<String>) {
    let head: String = path
        .trim_start()
        .chars()
        .take_while(|c| ident_char(*c))
        .collect();
    if !head.is_empty() && head != "self" {
        found.insert(head);
    }
}

#[test]
fn every_import_runs_down_the_layers_and_nothing_below_the_workflows_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        if BINARY.contains(&top) || top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = rank(top) else {
            problems.push(format!(
                "{}: module `{top}` has no place in the layer table (tests/it/layers.rs, ARCHITECTURE.md)",
                relative.display()
            ));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        checked += 1;
        for module in imported_modules(&code, &module_path(relative)) {
            if module == top {
                continue;
            }
            match rank(&module) {
                Some(theirs) if theirs < own => {}
                Some(_) => problems.push(format!(
                    "{}: `{top}` ({}) imports `{module}` ({}), which is not below it",
                    relative.display(),
                    ORDER[own].1,
                    ORDER[rank(&module).unwrap()].1
                )),
                // Macros and crate-root items (`crate::VERSION`) are not modules.
                None => {}
            }
        }
        if !MAY_PRINT.contains(&top) {
            for print in [
                "println!",
                "eprintln!",
                "print!",
                "eprint!",
                "stdout()",
                "stderr()",
            ] {
                if contains_word(&code, print) {
                    problems.push(format!(
                        "{}: `{top}` ({}) uses {print}: only the workflows and the binary print or write to the terminal",
                        relative.display(),
                        ORDER[own].1
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} library files were read");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_imports_and_ignores_tests_comments_and_strings() {
    let code = code_of(
        "use crate::{driver::run, metrics};\n// crate::report\nlet s = \"crate::spend\";\n\
         let c = '\"'; let r = r#\"crate::app\"#;\nfn f<'a>(x: &'a str) { super::export::go(); }\n\
         #[cfg(test)]\nmod tests { use crate::app; }\n#[cfg(test)]\nuse crate::mock;\nuse crate::slo::{self, Verdict};\n",
    );
    let found = imported_modules(&code, &["x".to_string()]);
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["driver", "export", "metrics", "slo"]);
    assert!(contains_word("eprintln!(\"x\")", "eprintln!"));
    assert!(!contains_word("eprintln!(\"x\")", "println!"));
    // From a nested file, `super::` stays inside its own module.
    let nested = imported_modules("use super::client;", &["driver".into(), "batch".into()]);
    assert!(nested.is_empty(), "{nested:?}");
}

/// The linear renderers allowed past [`LONGEST_FUNCTION`] lines (ARCHITECTURE.md names them):
/// each writes its sections in order, and splitting it would only scatter one page.
const NAMED_RENDERERS: &[(&str, &str)] = &[
    ("report/html.rs", "render"),
    ("report/terminal.rs", "summary"),
    ("report/compare.rs", "verdicts"),
    ("report/markdown.rs", "render"),
    ("report/format.rs", "workload_lines"),
];

/// The most lines a function may have, its signature and closing brace included.
const LONGEST_FUNCTION: usize = 120;

/// Each function of `code` (comments and strings blanked, lines kept): its name, first line
/// and length in lines.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let mut words = line.split_whitespace().peekable();
        while words
            .peek()
            .is_some_and(|w| w.starts_with("pub") || ["async", "const", "unsafe"].contains(w))
        {
            words.next();
        }
        if words.next() != Some("fn") {
            continue;
        }
        let Some(name) = words
            .next()
            .map(|w| w.chars().take_while(|c| ident_char(*c)).collect::<String>())
        else {
            continue;
        };
        // From the signature, to the brace that closes the body (a `;` first: no body).
        let rest = lines[number..].join("\n");
        let mut depth = 0;
        for (offset, c) in rest.char_indices() {
            match c {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        found.push((name, number + 1, rest[..=offset].lines().count()));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn no_function_is_longer_than_120_lines_but_the_named_renderers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    let mut measured = 0;
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for (name, line, length) in functions(&code) {
            measured += 1;
            let named = NAMED_RENDERERS.contains(&(relative.as_str(), name.as_str()));
            if length > LONGEST_FUNCTION && !named {
                long.push(format!("{relative}:{line}: fn {name} has {length} lines"));
            }
        }
    }
    assert!(measured > 500, "only {measured} functions were found");
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

#[test]
fn functions_are_measured_from_signature_to_closing_brace() {
    let code = code_of(
        "pub(crate) async fn a(x: u8) -> u8 {\n    let s = \"}\n}\";\n    x\n}\nfn b();\nfn c() {}\n",
    );
    let found = functions(&code);
    assert_eq!(found, [("a".to_string(), 1, 5), ("c".to_string(), 7, 1)]);
}
