#![no_main]
//! Fuzz target: see `drover::fuzzing::results_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drover::fuzzing::results_file(data);
});
