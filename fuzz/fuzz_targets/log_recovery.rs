#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehose_fuzz::log_recovery(data));
