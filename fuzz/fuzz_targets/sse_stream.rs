#![no_main]
//! Fuzz target: see `drover::fuzzing::sse_stream`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drover::fuzzing::sse_stream(data);
});
