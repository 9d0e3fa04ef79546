#![no_main]
//! Fuzz target: see `drover::fuzzing::retry_after`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drover::fuzzing::retry_after(data);
});
