//! Wall-clock text for message times: the day a timestamp falls on and its `HH:MM`, with no
//! time-zone database (the offset comes from the settings' `Zone`).

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (day number, "HH:MM") of a timestamp shifted by the configured offset.
pub fn day_time(ts_ms: i64, offset_s: i64) -> (i64, String) {
    let secs = ts_ms.div_euclid(1000) + offset_s;
    let day = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    (day, format!("{:02}:{:02}", t / 3600, (t % 3600) / 60))
}

pub fn day_label(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(day_label(20_576), "2026-05-03");
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(day_time(3_600_000 * 25 + 61_000, 0), (1, "01:01".into()));
        assert_eq!(day_time(0, 8 * 3600).1, "08:00");
    }
}
