//! Maps a key path such as `targets[1].api_key_env` to a line and column in the scenario text, so
//! that validation errors found after deserialization still point at the file.

use std::fmt;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A dotted key path into the scenario document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<PathSegment>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_string()));
        KeyPath(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        KeyPath(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => write!(f, "{key}")?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Line and column (both 1-based, column in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Finds where `path` is written in `text`: the value if present, else the deepest existing parent,
/// else the start of the file. Returns `(line, column)`.
pub fn locate(text: &str, path: &KeyPath) -> (usize, usize) {
    let Ok(document) = toml_edit::Document::parse(text) else {
        return (1, 1);
    };
    let mut item = document.as_item();
    let mut best_span = None;
    for segment in &path.0 {
        let next = match segment {
            PathSegment::Key(key) => {
                let key_span = item
                    .as_table_like()
                    .and_then(|table| table.get_key_value(key))
                    .and_then(|(k, _)| k.span());
                if key_span.is_some() {
                    best_span = key_span;
                }
                item.get(key.as_str())
            }
            PathSegment::Index(index) => item.get(*index),
        };
        match next {
            Some(found) => {
                if let Some(span) = found.span() {
                    best_span = Some(span);
                }
                item = found;
            }
            None => break,
        }
    }
    match best_span {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n\n[load]\nkind = \"open\"\nrate = -3\n\n[[targets]]\nname = \"a\"\n\n[[targets]]\nname = \"b\"\napi_key_env = \"NOPE\"\n";

    #[test]
    fn finds_nested_values() {
        let path = KeyPath::root().key("load").key("rate");
        assert_eq!(path.to_string(), "load.rate");
        assert_eq!(locate(DOC, &path), (5, 8));
    }

    #[test]
    fn finds_values_in_arrays_of_tables() {
        let path = KeyPath::root().key("targets").index(1).key("api_key_env");
        assert_eq!(path.to_string(), "targets[1].api_key_env");
        assert_eq!(locate(DOC, &path), (12, 15));
    }

    #[test]
    fn missing_keys_fall_back_to_their_parent() {
        let path = KeyPath::root().key("load").key("users");
        let (line, _) = locate(DOC, &path);
        assert!((3..=4).contains(&line), "line {line}");
        assert_eq!(locate(DOC, &KeyPath::root().key("classes")), (1, 1));
    }
}
