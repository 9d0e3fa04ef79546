#![no_main]
//! Fuzz target: see `drover::fuzzing::scenario_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drover::fuzzing::scenario_file(data);
});
