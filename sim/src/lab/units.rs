//! Reading the units a lab file writes: durations (`1.5s`, `200ms`),
//! rates (`10Mbit`), sizes (`64KiB`), and spelling suggestions for
//! mistakes.

use std::time::Duration;

/// Parses `1s`, `1.5s`, `200ms`, `50us`, `10ns`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let hint =
        || format!("{text:?} is not a duration; write a number and a unit: 500ms, 1.5s, 10us, 2m");
    if num.is_empty() {
        return Err(hint());
    }
    let value: f64 = num.parse().map_err(|_| hint())?;
    let nanos_per = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(hint()),
    };
    let nanos = value * nanos_per;
    if !nanos.is_finite() || !(0.0..=1e18).contains(&nanos) {
        return Err(hint());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Parses `10Mbit`, `1.5Gbit`, `100kbit`, `8000bit` (also `bps` spellings
/// of the same units) into bits per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let hint = || format!("{text:?} is not a rate; write e.g. 10Mbit, 100kbit, 1Gbit");
    let value: f64 = num.parse().map_err(|_| hint())?;
    let per = match unit.trim().to_ascii_lowercase().as_str() {
        "bit" | "bps" | "bit/s" => 1.0,
        "kbit" | "kbps" | "kbit/s" => 1e3,
        "mbit" | "mbps" | "mbit/s" => 1e6,
        "gbit" | "gbps" | "gbit/s" => 1e9,
        _ => return Err(hint()),
    };
    let bits = value * per;
    if !bits.is_finite() || bits < 1.0 {
        return Err(hint());
    }
    Ok(bits.round() as u64)
}

/// Parses a byte count: an integer, or `64KiB`, `1MiB`, `64KB`, `1MB`.
pub fn parse_size(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let hint = || {
                format!("{s:?} is not a size; write bytes as a number, or e.g. 64KiB, 1MiB, 10MB")
            };
            let v: f64 = num.parse().map_err(|_| hint())?;
            let per = match unit.trim() {
                "" | "B" => 1.0,
                "KB" | "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(hint()),
            };
            let bytes = v * per;
            if !bytes.is_finite() || bytes < 0.0 {
                return Err(hint());
            }
            Ok(bytes.round() as u64)
        }
        other => Err(format!(
            "{other} is not a size; write bytes as a number, or e.g. \"64KiB\""
        )),
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `choices` to `word`, if close enough to be a typo.
pub fn suggest<'a>(word: &str, choices: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    choices
        .into_iter()
        .map(|c| {
            (
                distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn rates_and_sizes() {
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert!(parse_rate("10").is_err());
        assert_eq!(parse_size(&toml::Value::Integer(100)), Ok(100));
        assert_eq!(parse_size(&toml::Value::String("64KiB".into())), Ok(65_536));
        assert_eq!(
            parse_size(&toml::Value::String("1MB".into())),
            Ok(1_000_000)
        );
        assert!(parse_size(&toml::Value::String("lots".into())).is_err());
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["latency", "jitter", "loss"];
        assert_eq!(suggest("lattency", keys), Some("latency"));
        assert_eq!(suggest("los", keys), Some("loss"));
        assert_eq!(suggest("bandwidth", keys), None);
    }
}
