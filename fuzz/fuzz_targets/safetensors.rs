#![no_main]
//! `safetensors` (t5_fuzz::TARGETS) under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| t5_fuzz::run("safetensors", data));
