#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rain_proto::fuzz::tracker::http_tracker(data);
});
