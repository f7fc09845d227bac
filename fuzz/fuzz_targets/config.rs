#![no_main]
//! `config` (t5_fuzz::TARGETS) under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| t5_fuzz::run("config", data));
