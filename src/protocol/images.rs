//! Images in requests. drover builds messages in OpenAI's chat format, where an image is an
//! `image_url` part (a `data:` URL or a web address, with an optional `detail`); this module
//! turns such a part into the Anthropic Messages API's `image` block and the Responses API's
//! `input_image` part, reads an image's size from its bytes, and prices it in tokens with each
//! provider's documented formula (used when a server reports no usage, for the spend
//! projection, and by the mock):
//!
//! - OpenAI (chat completions and Responses, GPT-4o/4.1 family): `detail = "low"` is 85 tokens;
//!   otherwise the image is scaled to fit 2048 × 2048, then down so that its shorter side is at
//!   most 768, and costs 85 + 170 per 512-pixel tile.
//! - Anthropic: an image whose long edge exceeds 1568 is scaled down to it; it costs
//!   width × height / 750 tokens, rounded up.

use base64::Engine;
use serde_json::{json, Value};

use super::Api;

/// An `image_url` part in OpenAI's chat format.
pub fn openai_part(url: &str, detail: Option<&str>) -> Value {
    let mut image = json!({ "url": url });
    if let Some(detail) = detail {
        image["detail"] = json!(detail);
    }
    json!({ "type": "image_url", "image_url": image })
}

/// A `data:` URL of `bytes` of `media_type`.
pub fn data_url(media_type: &str, bytes: &[u8]) -> String {
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The media type and base64 payload of a `data:` URL.
fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, payload) = rest.split_once(";base64,")?;
    Some((media_type, payload))
}

/// The URL and detail of an `image_url` part (`None` for any other part).
fn image_of(part: &Value) -> Option<(&str, Option<&str>)> {
    if part.get("type").and_then(Value::as_str) != Some("image_url") {
        return None;
    }
    let image = part.get("image_url")?;
    let url = image.get("url").and_then(Value::as_str)?;
    Some((url, image.get("detail").and_then(Value::as_str)))
}

/// An `image_url` part as the Messages API's `image` block (base64 source for a data URL, URL
/// source otherwise); any other part unchanged.
pub fn to_anthropic(part: Value) -> Value {
    let Some((url, _)) = image_of(&part) else {
        return part;
    };
    match split_data_url(url) {
        Some((media_type, data)) => json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data }
        }),
        None => json!({ "type": "image", "source": { "type": "url", "url": url } }),
    }
}

/// An `image_url` part as the Responses API's `input_image` part; any other part unchanged.
pub fn to_responses(part: Value) -> Value {
    let Some((url, detail)) = image_of(&part) else {
        return part;
    };
    json!({ "type": "input_image", "image_url": url, "detail": detail.unwrap_or("auto") })
}

/// Width and height of an image from its first bytes (PNG, JPEG, GIF, WebP and more).
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(bytes).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

/// The tokens an image of `width` × `height` costs on `api` (see the module documentation).
pub fn tokens(api: Api, width: u32, height: u32, detail: Option<&str>) -> u64 {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    match api {
        Api::Anthropic => {
            let scale = (1568.0 / w.max(h)).min(1.0);
            ((w * scale).round() * (h * scale).round() / 750.0).ceil() as u64
        }
        _ if detail == Some("low") => 85,
        _ => {
            let fit = (2048.0 / w.max(h)).min(1.0);
            let (w, h) = (w * fit, h * fit);
            let shorter = (768.0 / w.min(h)).min(1.0);
            let (w, h) = ((w * shorter).round(), (h * shorter).round());
            let tiles = (w / 512.0).ceil() * (h / 512.0).ceil();
            85 + 170 * tiles as u64
        }
    }
}

/// What the images of a request body cost on `api`, by the formula: the tokens of each image it
/// carries as a data URL (an image given by web address has no size here and counts 0), and how
/// many images it carries.
pub fn in_body(api: Api, body: &Value) -> (u64, u64) {
    let messages = api.prompt_messages(body);
    in_messages(api, messages.as_array().map_or(&[][..], Vec::as_slice))
}

/// [`in_body`] for a body's messages already read (in any of the three formats).
pub fn in_messages(api: Api, messages: &[Value]) -> (u64, u64) {
    let mut tokens_total = 0;
    let mut count = 0;
    for message in messages {
        let Some(parts) = message.get("content").and_then(Value::as_array) else {
            continue;
        };
        for part in parts {
            let Some((url, detail)) = image_source(part) else {
                continue;
            };
            count += 1;
            if let Some((width, height)) = data_url_dimensions(&url) {
                tokens_total += tokens(api, width, height, detail);
            }
        }
    }
    (tokens_total, count)
}

/// The URL (or base64 data, as a data URL) and detail of an image part in any of the three
/// formats.
fn image_source(part: &Value) -> Option<(std::borrow::Cow<'_, str>, Option<&str>)> {
    if let Some((url, detail)) = image_of(part) {
        return Some((url.into(), detail));
    }
    match part.get("type").and_then(Value::as_str)? {
        "input_image" => Some((
            part.get("image_url")?.as_str()?.into(),
            part.get("detail").and_then(Value::as_str),
        )),
        "image" => {
            let source = part.get("source")?;
            match source.get("type").and_then(Value::as_str)? {
                "base64" => Some((
                    format!(
                        "data:{};base64,{}",
                        source.get("media_type")?.as_str()?,
                        source.get("data")?.as_str()?
                    )
                    .into(),
                    None,
                )),
                _ => Some((source.get("url")?.as_str()?.into(), None)),
            }
        }
        _ => None,
    }
}

/// The dimensions of the image in a `data:` URL, decoding only its first bytes.
fn data_url_dimensions(url: &str) -> Option<(u32, u32)> {
    let (_, payload) = split_data_url(url)?;
    // 64 KiB of base64 (48 KiB of image) holds the header of any format imagesize reads.
    let mut head = &payload[..payload.len().min(64 * 1024)];
    head = &head[..head.len() - head.len() % 4];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .ok()?;
    dimensions(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_tokens_follow_the_tile_formula() {
        // OpenAI's worked examples: 1024 × 1024 high → 768 × 768, 4 tiles, 765 tokens;
        // 2048 × 4096 → 1024 × 2048 → 768 × 1536, 6 tiles, 1105 tokens.
        assert_eq!(tokens(Api::OpenAi, 1024, 1024, Some("high")), 765);
        assert_eq!(tokens(Api::OpenAi, 2048, 4096, None), 1105);
        assert_eq!(tokens(Api::OpenAi, 4096, 8192, Some("low")), 85);
        assert_eq!(tokens(Api::OpenAi, 512, 512, None), 255);
        assert_eq!(tokens(Api::Responses, 512, 512, Some("auto")), 255);
    }

    #[test]
    fn anthropic_tokens_are_pixels_over_750() {
        // Anthropic's table: 1092 × 1092 ≈ 1590 tokens; 200 × 200 ≈ 54.
        assert_eq!(tokens(Api::Anthropic, 1092, 1092, None), 1590);
        assert_eq!(tokens(Api::Anthropic, 200, 200, None), 54);
        assert_eq!(tokens(Api::Anthropic, 512, 512, None), 350);
        // A long edge over 1568 is scaled down first.
        assert_eq!(
            tokens(Api::Anthropic, 3136, 1568, None),
            tokens(Api::Anthropic, 1568, 784, None)
        );
    }

    #[test]
    fn parts_convert_and_count_in_every_format() {
        // A 1 × 1 PNG.
        let png = base64::engine::general_purpose::STANDARD
            .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
            .unwrap();
        assert_eq!(dimensions(&png), Some((1, 1)));
        let url = data_url("image/png", &png);
        let part = openai_part(&url, Some("low"));
        let anthropic = to_anthropic(part.clone());
        assert_eq!(anthropic["type"], "image");
        assert_eq!(anthropic["source"]["media_type"], "image/png");
        let responses = to_responses(part.clone());
        assert_eq!(responses["type"], "input_image");
        assert_eq!(responses["detail"], "low");
        let text = json!({ "type": "text", "text": "hi" });
        assert_eq!(to_anthropic(text.clone()), text);
        let openai_body = json!({ "messages": [{ "role": "user", "content": [text, part] }] });
        assert_eq!(in_body(Api::OpenAi, &openai_body), (85, 1));
        let anthropic_body = json!({ "messages": [{ "role": "user", "content": [anthropic] }] });
        assert_eq!(in_body(Api::Anthropic, &anthropic_body), (1, 1));
        let responses_body = json!({ "input": [{ "role": "user", "content": [responses] }] });
        assert_eq!(in_body(Api::Responses, &responses_body), (85, 1));
        // A web address: counted as an image, of unknown size.
        let web = json!({ "messages": [{ "role": "user", "content": [openai_part("https://example.com/a.png", None)] }] });
        assert_eq!(in_body(Api::OpenAi, &web), (0, 1));
        // Not an image, or garbage: nothing, never a panic.
        assert_eq!(data_url_dimensions("data:image/png;base64,!!!!"), None);
        assert_eq!(dimensions(b"not an image"), None);
    }
}
