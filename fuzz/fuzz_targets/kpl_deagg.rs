#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehose_fuzz::kpl_deagg(data));
