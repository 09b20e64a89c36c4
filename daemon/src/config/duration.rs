//! Go duration strings (`time.ParseDuration` and `Duration.String`), as rain's YAML uses them.
//!
//! Syntax: an optional sign, then one or more `<number><unit>` pairs with no spaces, such as
//! `30s`, `1m30s`, `24h`, `500ms` or `1h2m3.5s`. A number may have a fraction (`1.5h`, `.5s`).
//! Units: `ns`, `us` (also `µs` and `μs`), `ms`, `s`, `m`, `h`. The single exception to "a unit is
//! required" is `0` (also `+0`, `-0`). As in Go, the total must fit in a signed 64-bit count of
//! nanoseconds (about 292 years). A negative duration parses in Go but is meaningless for every
//! rain setting, so it is an error here.

use std::time::Duration;

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty, or not made of `<number><unit>` pairs.
    #[error("invalid duration {0:?} (expected a Go duration such as 30s, 1m30s or 24h)")]
    Invalid(String),
    /// A number without a unit, such as `30`.
    #[error("missing unit in duration {0:?} (write e.g. 30s; units are ns, us, ms, s, m, h)")]
    MissingUnit(String),
    /// A unit that Go does not know, such as `30x` or `1d`.
    #[error("unknown unit {unit:?} in duration {input:?} (units are ns, us, ms, s, m, h)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The offending unit.
        unit: String,
    },
    /// Larger than Go's `time.Duration` can hold.
    #[error("duration {0:?} is too large")]
    Overflow(String),
    /// Below zero.
    #[error("duration {0:?} must not be negative")]
    Negative(String),
}

/// Nanoseconds per unit, longest unit names first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // micro sign
    ("\u{3bc}s", 1_000), // Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// The largest magnitude Go's `time.Duration` (an `int64` of nanoseconds) holds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this are ignored (they are below a nanosecond for every unit).
const MAX_FRACTION_DIGITS: u32 = 18;

/// Parses a Go duration string such as `1m30s`. Negative durations are rejected.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: integer digits, then an optional fraction.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next number.
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit, tail) = after_number.split_at(unit_len);
        let Some(&(_, per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        };
        let overflow = || DurationError::Overflow(input.to_owned());
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            // More than 39 digits cannot fit in u128; anything that long overflows anyway.
            int_digits.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(per_unit).ok_or_else(overflow)?;
        if !frac_digits.is_empty() {
            let kept = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS as usize)];
            let value: u128 = kept.parse().map_err(|_| invalid())?;
            nanos += value * per_unit / 10u128.pow(kept.len() as u32);
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        // Go allows exactly 2^63 ns when negative; that is negative anyway, so MAX suffices.
        if total > MAX_NANOS {
            return Err(overflow());
        }
        rest = tail;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration as Go's `Duration.String` does: `0s`, `500ms`, `1.5µs`, `30s`, `1m30s`,
/// `24h0m0s`. [`parse_go_duration`] reads the result back exactly (for durations up to Go's
/// maximum).
pub fn format_go_duration(d: Duration) -> String {
    const SEC: u128 = 1_000_000_000;
    let n = d.as_nanos();
    if n == 0 {
        return "0s".to_owned();
    }
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return format!("{}\u{b5}s", with_fraction(n, 1_000));
    }
    if n < SEC {
        return format!("{}ms", with_fraction(n, 1_000_000));
    }
    let hours = n / (3_600 * SEC);
    let minutes = n / (60 * SEC) % 60;
    let seconds = n % (60 * SEC);
    let mut out = String::new();
    if hours > 0 {
        out = format!("{hours}h");
    }
    if hours > 0 || minutes > 0 {
        out = format!("{out}{minutes}m");
    }
    format!("{out}{}s", with_fraction(seconds, SEC))
}

/// `n / unit` with the remainder as a decimal fraction without trailing zeros.
fn with_fraction(n: u128, unit: u128) -> String {
    let (whole, rem) = (n / unit, n % unit);
    if rem == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{DurationError, format_go_duration, parse_go_duration};

    #[test]
    fn valid_go_durations() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let table: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("30s", s(30)),
            ("+30s", s(30)),
            ("1m30s", s(90)),
            ("24h", s(86_400)),
            ("500ms", ms(500)),
            ("1h2m3.5s", ms(3_723_500)),
            ("1.5h", s(5_400)),
            (".5s", ms(500)),
            ("1.s", s(1)),
            ("10m", s(600)),
            ("1h1h", s(7_200)),
            ("250us", Duration::from_micros(250)),
            ("250\u{b5}s", Duration::from_micros(250)),
            ("250\u{3bc}s", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1.000000001s", Duration::from_nanos(1_000_000_001)),
            ("0.1234567891234567891s", Duration::from_nanos(123_456_789)),
            ("2562047h", s(2_562_047 * 3_600)),
        ];
        for &(text, want) in table {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
    }

    /// A check on the error a string gives.
    type Expect = fn(&DurationError) -> bool;

    #[test]
    fn invalid_go_durations() {
        let table: &[(&str, Expect)] = &[
            ("", |e| matches!(e, DurationError::Invalid(_))),
            ("-", |e| matches!(e, DurationError::Invalid(_))),
            ("s", |e| matches!(e, DurationError::Invalid(_))),
            (".s", |e| matches!(e, DurationError::Invalid(_))),
            ("1h 30m", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("30", |e| matches!(e, DurationError::MissingUnit(_))),
            ("00", |e| matches!(e, DurationError::MissingUnit(_))),
            ("1m30", |e| matches!(e, DurationError::MissingUnit(_))),
            (
                "30x",
                |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "x"),
            ),
            (
                "1d",
                |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "d"),
            ),
            ("30S", |e| matches!(e, DurationError::UnknownUnit { .. })),
            (" 30s", |e| matches!(e, DurationError::Invalid(_))),
            ("-5s", |e| matches!(e, DurationError::Negative(_))),
            ("2562048h", |e| matches!(e, DurationError::Overflow(_))),
            ("99999999999999999999999999999999999999999h", |e| {
                matches!(e, DurationError::Overflow(_))
            }),
        ];
        for &(text, is_expected) in table {
            let err = parse_go_duration(text).expect_err(text);
            assert!(is_expected(&err), "{text:?} gave {err:?}");
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn formats_like_go_and_round_trips() {
        let table: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(1_500), "1.5\u{b5}s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(600), "10m0s"),
            (Duration::from_secs(86_400), "24h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
        ];
        for &(d, text) in table {
            assert_eq!(format_go_duration(d), text);
            assert_eq!(parse_go_duration(text), Ok(d), "{text}");
        }
    }
}
