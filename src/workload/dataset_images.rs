//! Images named by a dataset record: `"images": ["photos/cat.png", "https://…/dog.jpg"]` beside
//! its messages. A local path (relative to the dataset file) is read when the dataset loads,
//! checked to be an image drover can size (PNG, JPEG, GIF, WebP, BMP and more) of at most
//! [`MAX_IMAGE_BYTES`], and sent as a `data:` URL; a web address (or a `data:` URL) is sent as it
//! is, for the server to fetch. The parts go after the text of the record's last user message.

use std::path::Path;

use serde_json::Value;

use crate::protocol::images;

/// The largest image file a dataset may name: 20 MiB (OpenAI's limit per image).
pub const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// A record's images: their `image_url` parts, and their sizes (`None` for a web address).
pub(super) type RecordImages = (Vec<Value>, Vec<Option<(u32, u32)>>);

/// Reads the `images` of a record (`dir`: the dataset's folder). Errors name the entry.
pub(super) fn record_images(value: &Value, dir: &Path) -> Result<RecordImages, String> {
    let Some(list) = value.get("images") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let list = list
        .as_array()
        .ok_or("\"images\" must be a list of paths or URLs")?;
    let mut parts = Vec::new();
    let mut sizes = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let entry = entry
            .as_str()
            .ok_or_else(|| format!("images[{i}] must be a path or URL string"))?;
        if entry.starts_with("https://") || entry.starts_with("http://") {
            parts.push(images::openai_part(entry, None));
            sizes.push(None);
            continue;
        }
        let path = dir.join(entry);
        let shown = path.display();
        let metadata = std::fs::metadata(&path)
            .map_err(|e| format!("images[{i}]: cannot read {shown}: {e}"))?;
        if metadata.len() > MAX_IMAGE_BYTES {
            return Err(format!(
                "images[{i}]: {shown} is {} bytes, more than the {MAX_IMAGE_BYTES} an image may have",
                metadata.len()
            ));
        }
        let bytes =
            std::fs::read(&path).map_err(|e| format!("images[{i}]: cannot read {shown}: {e}"))?;
        let (Some(size), Some(media_type)) = (images::dimensions(&bytes), media_type(&bytes))
        else {
            return Err(format!(
                "images[{i}]: {shown} is not an image drover can read (PNG, JPEG, GIF or WebP)"
            ));
        };
        parts.push(images::openai_part(
            &images::data_url(media_type, &bytes),
            None,
        ));
        sizes.push(Some(size));
    }
    Ok((parts, sizes))
}

/// The media type of an image the APIs take, from its first bytes.
fn media_type(bytes: &[u8]) -> Option<&'static str> {
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => Some("image/png"),
        imagesize::ImageType::Jpeg => Some("image/jpeg"),
        imagesize::ImageType::Gif => Some("image/gif"),
        imagesize::ImageType::Webp => Some("image/webp"),
        _ => None,
    }
}

/// Appends image parts after the text of the last user message.
pub(crate) fn append_to_last_user(messages: &mut [Value], parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    let Some(user) = messages
        .iter_mut()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return;
    };
    let mut content = match user.get_mut("content").map(Value::take) {
        Some(Value::String(text)) => vec![serde_json::json!({ "type": "text", "text": text })],
        Some(Value::Array(existing)) => existing,
        _ => Vec::new(),
    };
    content.extend(parts);
    user["content"] = Value::Array(content);
}
