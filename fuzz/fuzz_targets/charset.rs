#![no_main]

use domicile_gateway::inspect::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = fuzzing::charset(data) {
        panic!("charset: {e}");
    }
});
