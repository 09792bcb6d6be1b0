#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehose_fuzz::record_deagg(data));
