//! A byte-level mutator in the style of libFuzzer's and AFL's havoc stage:
//! bit flips, random bytes, deletions, duplications, dictionary tokens,
//! interesting numbers and splices with other corpus entries, stacked.

/// A small, fast, seedable generator (SplitMix64): the same seed gives the
/// same run, so a crash found with `--seed N` can be found again.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Numbers that break parsers: boundaries of the integer types, signs,
/// exponents, things that are almost numbers.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-1",
    b"1",
    b"2",
    b"3",
    b"127",
    b"128",
    b"255",
    b"256",
    b"-129",
    b"32767",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"-2147483649",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"1e309",
    b"-1e309",
    b"NaN",
    b"inf",
    b"0x10",
    b"1.5",
    b"",
    b" ",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\r\n",
];

/// Mutates `data` in place with 1 to 8 stacked operations, keeping it at
/// most `max_len` bytes. `dict` holds the target's tokens; `others` is the
/// corpus, for splices.
pub fn mutate(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    dict: &[&[u8]],
    others: &[Vec<u8>],
    max_len: usize,
) {
    let ops = 1 + rng.below(8);
    for _ in 0..ops {
        match rng.below(13) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next_u64() as u8);
            }
            3 if !data.is_empty() => {
                // Delete a range, usually short.
                let i = rng.below(data.len());
                let span = if rng.one_in(4) { 256 } else { 8 };
                let n = 1 + rng.below((data.len() - i).min(span));
                data.drain(i..i + n);
            }
            4 if !data.is_empty() => {
                // Duplicate a range somewhere else.
                let i = rng.below(data.len());
                let n = 1 + rng.below((data.len() - i).min(64));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            5 | 6 if !dict.is_empty() => {
                let tok = dict[rng.below(dict.len())];
                let at = rng.below(data.len() + 1);
                data.splice(at..at, tok.iter().copied());
            }
            7 if !dict.is_empty() && !data.is_empty() => {
                // Overwrite with a token.
                let tok = dict[rng.below(dict.len())];
                let at = rng.below(data.len());
                let end = (at + tok.len()).min(data.len());
                data.splice(at..end, tok.iter().copied());
            }
            8 => {
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(data.len() + 1);
                let end = if rng.one_in(2) {
                    at
                } else {
                    (at + 1 + rng.below(4)).min(data.len())
                };
                data.splice(at..end, tok.iter().copied());
            }
            9 if !others.is_empty() => {
                // Splice: our head, another entry's tail.
                let other = &others[rng.below(others.len())];
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            10 => {
                // Swap two lines: reorders keys, rules and hash fields.
                let lines: Vec<usize> = data
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i)
                    .collect();
                if lines.len() >= 2 {
                    let a = lines[rng.below(lines.len())];
                    let b = lines[rng.below(lines.len())];
                    let (a, b) = (a.min(b), a.max(b));
                    if a < b {
                        data[a + 1..=b].rotate_left(1 + rng.below(b - a));
                    }
                }
            }
            11 if !data.is_empty() => {
                let n = rng.below(data.len());
                data.truncate(n);
            }
            12 if !data.is_empty() => {
                // A small arithmetic change on a byte, as AFL does.
                let i = rng.below(data.len());
                let d = 1 + rng.below(35) as u8;
                data[i] = if rng.one_in(2) {
                    data[i].wrapping_add(d)
                } else {
                    data[i].wrapping_sub(d)
                };
            }
            _ => {}
        }
    }
    if data.len() > max_len {
        data.truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutants() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut d = b"backend.redis.pool1.server = 127.0.0.1:6379".to_vec();
            for _ in 0..100 {
                mutate(&mut rng, &mut d, &[b"${", b"}"], &[b"x = y".to_vec()], 512);
            }
            d
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn never_longer_than_the_cap() {
        let mut rng = Rng::new(1);
        let mut d = vec![b'a'; 100];
        for _ in 0..10_000 {
            mutate(&mut rng, &mut d, &[b"0123456789"], &[vec![b'b'; 300]], 128);
            assert!(d.len() <= 128);
        }
    }
}
