#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rain_proto::fuzz::torrent_machine::torrent_machine(data);
});
