//! Properties of the SSE parser: however a stream is cut into chunks, the events (and where a
//! size limit stops them) are the same, and no input, however malformed, makes it panic.

use drover::protocol::sse::{SseItem, SseParser, DEFAULT_MAX_EVENT_BYTES};
use proptest::prelude::*;

fn parse(chunks: &[&[u8]]) -> Vec<SseItem> {
    parse_with_limit(DEFAULT_MAX_EVENT_BYTES, chunks)
}

fn parse_with_limit(limit: usize, chunks: &[&[u8]]) -> Vec<SseItem> {
    let mut parser = SseParser::with_limit(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut out);
    }
    out
}

/// `bytes` cut into pieces at the points `cuts` names (each taken modulo the length).
fn cut_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for point in points {
        pieces.push(&bytes[start..point]);
        start = point;
    }
    pieces.push(&bytes[start..]);
    pieces
}

/// A stream of events built from arbitrary field lines, with mixed line ends; some data is not
/// valid UTF-8.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let line_end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    let text = |prefix: &'static str, pattern: &'static str| {
        pattern.prop_map(move |v| format!("{prefix}{v}").into_bytes())
    };
    let field = prop_oneof![
        text("data: ", "[ -~]{0,40}"),
        text("data:", "[ -~]{0,20}"),
        text("event: ", "[a-z]{0,8}"),
        text("id: ", "[0-9]{0,4}"),
        text(": ", "[ -~]{0,20}"),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(|v| {
            let mut line = b"data: ".to_vec();
            line.extend(v.into_iter().filter(|b| *b != b'\n' && *b != b'\r'));
            line
        }),
        Just(Vec::new()),
    ];
    proptest::collection::vec((field, line_end), 0..40).prop_map(|lines| {
        let mut bytes = Vec::new();
        for (field, end) in lines {
            bytes.extend_from_slice(&field);
            bytes.extend_from_slice(end.as_bytes());
        }
        bytes.extend_from_slice(b"\n\n");
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunking_never_changes_the_events(bytes in stream(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let whole = parse(&[&bytes]);
        let pieces = cut_at(&bytes, &cuts);
        prop_assert_eq!(parse(&pieces), whole);
    }

    /// Events whole in one read are taken in one step (`data: …` and a blank line); byte by
    /// byte every line is read alone: both must give the same items.
    #[test]
    fn whole_events_read_as_their_lines_are(bytes in stream()) {
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(parse(&[&bytes]), parse(&bytewise));
    }

    /// With limits as short as the generated lines, a stream fails the size limit (and at the
    /// same item) whether it arrives whole, cut at random or byte by byte.
    #[test]
    fn the_size_limits_do_not_depend_on_the_cuts(bytes in stream(), limit in 4usize..64, cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let whole = parse_with_limit(limit, &[&bytes]);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&parse_with_limit(limit, &bytewise), &whole);
        let pieces = cut_at(&bytes, &cuts);
        prop_assert_eq!(&parse_with_limit(limit, &pieces), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), split in any::<usize>()) {
        let split = split % (bytes.len() + 1);
        let (a, b) = bytes.split_at(split);
        let items = parse(&[a, b]);
        prop_assert_eq!(items, parse(&[&bytes]));
    }
}
