//! Allocation-free string metrics for short ASCII strings (names, ids, postcodes: the common case
//! on the hot comparison path), falling back to `strsim` for anything else. Property tests check
//! they agree with `strsim` exactly.

/// Longest string the fast paths handle (the match flags live in one `u64`).
const FAST_LIMIT: usize = 64;

/// Jaro-Winkler similarity (prefix scale 0.1, prefix up to 4, boost above 0.7), as
/// `strsim::jaro_winkler`.
pub fn jaro_winkler(left: &str, right: &str) -> f64 {
    let (a, b) = (left.as_bytes(), right.as_bytes());
    if !(left.is_ascii() && right.is_ascii()) || a.len() > FAST_LIMIT || b.len() > FAST_LIMIT {
        return strsim::jaro_winkler(left, right);
    }
    let jaro = ascii_jaro(a, b);
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    jaro + 0.1 * prefix as f64 * (1.0 - jaro)
}

fn ascii_jaro(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_flags: u64 = 0;
    let mut a_flags: u64 = 0;
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let start = i.saturating_sub(window);
        let end = (i + window + 1).min(b.len());
        for (j, &cb) in b.iter().enumerate().take(end).skip(start) {
            if b_flags & (1 << j) == 0 && cb == ca {
                b_flags |= 1 << j;
                a_flags |= 1 << i;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        if a_flags & (1 << i) == 0 {
            continue;
        }
        while b_flags & (1 << j) == 0 {
            j += 1;
        }
        if ca != b[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let matches = matches as f64;
    let transpositions = (transpositions / 2) as f64;
    (matches / a.len() as f64 + matches / b.len() as f64 + (matches - transpositions) / matches)
        / 3.0
}

/// Optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions counted
/// once, no substring edited twice), as `strsim::osa_distance`.
pub fn osa_distance(left: &str, right: &str) -> usize {
    let (a, b) = (left.as_bytes(), right.as_bytes());
    if !(left.is_ascii() && right.is_ascii()) || a.len() > FAST_LIMIT || b.len() > FAST_LIMIT {
        return strsim::osa_distance(left, right);
    }
    // Three rolling rows of distances (each at most 64, so a byte is enough).
    let width = b.len() + 1;
    let mut rows = [[0u8; FAST_LIMIT + 1]; 3];
    for (j, cell) in rows[1].iter_mut().enumerate().take(width) {
        *cell = j as u8;
    }
    let (mut two_ago, mut previous, mut current) = (0usize, 1usize, 2usize);
    for i in 1..=a.len() {
        rows[current][0] = i as u8;
        for j in 1..width {
            let cost = u8::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[previous][j] + 1)
                .min(rows[current][j - 1] + 1)
                .min(rows[previous][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[two_ago][j - 2] + 1);
            }
            rows[current][j] = best;
        }
        (two_ago, previous, current) = (previous, current, two_ago);
    }
    usize::from(rows[previous][b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert!(
            (jaro_winkler("martha", "marhta") - strsim::jaro_winkler("martha", "marhta")).abs()
                < 1e-12
        );
        assert_eq!(osa_distance("smith", "smtih"), 1);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(jaro_winkler("", ""), strsim::jaro_winkler("", ""));
    }

    proptest! {
        #[test]
        fn agree_with_strsim(left in "[a-e ]{0,12}", right in "[a-e ]{0,12}") {
            prop_assert!((jaro_winkler(&left, &right) - strsim::jaro_winkler(&left, &right)).abs() < 1e-9,
                "{} {} {} {}", left, right, jaro_winkler(&left, &right), strsim::jaro_winkler(&left, &right));
            prop_assert_eq!(osa_distance(&left, &right), strsim::osa_distance(&left, &right));
        }

        #[test]
        fn agree_with_strsim_on_any_text(left in "\\PC{0,70}", right in "\\PC{0,70}") {
            prop_assert!((jaro_winkler(&left, &right) - strsim::jaro_winkler(&left, &right)).abs() < 1e-9);
            prop_assert_eq!(osa_distance(&left, &right), strsim::osa_distance(&left, &right));
        }
    }
}
