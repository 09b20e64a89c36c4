#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rain_runtime::fuzz::resume_record(data);
});
