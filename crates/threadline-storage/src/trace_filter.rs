//! A block's trace filter: whether a block may hold a trace, answered from memory.
//!
//! Each block has one, built when the block is written and kept in the index beside the
//! block's row. A trace lookup checks every block's filter and reads only the blocks that may
//! hold the trace, so the index needs no entry per trace (which, keyed by random ids, grew
//! ever more costly to write as it grew; see `docs/storage.md`).
//!
//! The layout is a split-block Bloom filter, as Parquet's own: buckets of eight 32-bit words,
//! and a trace sets one bit in each word of one bucket, so a lookup reads one cache line.
//! With [`BITS_PER_TRACE`] bits per trace, a block that does not hold a trace answers "may"
//! about once in a thousand (a test measures it); it then costs a block read that finds
//! nothing.

use threadline_core::id::TraceId;

use crate::codec::DecodeError;

/// Filter bits per distinct trace of a block.
pub const BITS_PER_TRACE: usize = 16;
/// Format of the stored filter (its first byte).
const FILTER_VERSION: u8 = 1;
/// Bits picked in a bucket's words: the salts of Parquet's split-block Bloom filter.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

type Bucket = [u32; 8];

/// Which traces a block may hold; also, through [`TraceFilter::insert_bytes`], which keys a
/// sorted run of the process indexes may hold (`runs.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFilter {
    buckets: Box<[Bucket]>,
}

impl TraceFilter {
    /// A filter holding `ids` (repeats are harmless).
    pub fn build<'a>(ids: impl ExactSizeIterator<Item = &'a TraceId>) -> Self {
        let mut filter = Self::sized(ids.len());
        for id in ids {
            filter.insert_hash(hash(id));
        }
        filter
    }

    /// An empty filter sized for `items` distinct items.
    pub(crate) fn sized(items: usize) -> Self {
        let buckets = (items * BITS_PER_TRACE).div_ceil(256).max(1);
        Self { buckets: vec![[0u32; 8]; buckets].into_boxed_slice() }
    }

    /// False when the block surely holds no span of `id`.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.may_contain_hash(hash(id))
    }

    /// Adds a byte string (another index's lookup key), hashed by [`hash_bytes`].
    pub(crate) fn insert_bytes(&mut self, bytes: &[u8]) {
        self.insert_hash(hash_bytes(bytes));
    }

    /// False when `bytes` was surely never added by [`TraceFilter::insert_bytes`].
    pub(crate) fn may_contain_bytes(&self, bytes: &[u8]) -> bool {
        self.may_contain_hash(hash_bytes(bytes))
    }

    fn insert_hash(&mut self, h: u64) {
        let at = self.bucket(h);
        let bucket = &mut self.buckets[at];
        for (word, bit) in bucket.iter_mut().zip(mask(h)) {
            *word |= bit;
        }
    }

    fn may_contain_hash(&self, h: u64) -> bool {
        let bucket = &self.buckets[self.bucket(h)];
        bucket.iter().zip(mask(h)).all(|(word, bit)| word & bit != 0)
    }

    /// Memory the filter takes.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }

    /// The stored form: a version byte, then each word little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.bytes());
        out.push(FILTER_VERSION);
        for word in self.buckets.iter().flatten() {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some((&version, words)) = bytes.split_first() else {
            return Err(DecodeError::Invalid("an empty trace filter"));
        };
        if version != FILTER_VERSION {
            return Err(DecodeError::Invalid("a trace filter of another version"));
        }
        if words.is_empty() || words.len() % size_of::<Bucket>() != 0 {
            return Err(DecodeError::Invalid("a trace filter of a length no whole bucket fills"));
        }
        let buckets = words
            .chunks_exact(size_of::<Bucket>())
            .map(|chunk| {
                let mut bucket = [0u32; 8];
                for (word, b) in bucket.iter_mut().zip(chunk.chunks_exact(4)) {
                    *word = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                bucket
            })
            .collect();
        Ok(Self { buckets })
    }

    /// The bucket for hash `h`: its high half scaled to the bucket count.
    fn bucket(&self, h: u64) -> usize {
        // Below `buckets.len()`, which is a usize: the cast cannot truncate.
        (((h >> 32) * self.buckets.len() as u64) >> 32) as usize
    }
}

/// A bit in each word of a bucket, from the low half of `h`.
fn mask(h: u64) -> [u32; 8] {
    #[allow(clippy::cast_possible_truncation, reason = "the low half is wanted")]
    let low = h as u32;
    SALT.map(|salt| 1u32 << (low.wrapping_mul(salt) >> 27))
}

/// A fixed hash of a trace id: stored filters depend on it, so it never changes within a
/// filter version. Ids from any generator (W3C random ones, or 64-bit ids padded with zeros)
/// spread evenly, since both halves go through a full mix.
fn hash(id: &TraceId) -> u64 {
    let b = id.as_bytes();
    let high = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let low = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    mix(high ^ mix(low ^ 0x9e37_79b9_7f4a_7c15))
}

/// A fixed hash of a byte string, for filters over other keys than trace ids: stored filters
/// depend on it too. Every 8 bytes (the last ones zero-padded) go through a full mix, with
/// the length, so keys that differ anywhere, or only in length, spread apart.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = mix(bytes.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    h
}

/// The SplitMix64 finalizer.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64, padded: bool) -> TraceId {
        let mut bytes = [0u8; 16];
        if padded {
            // 64-bit ids as some older tracers make them: the high half all zeros.
            bytes[8..].copy_from_slice(&n.to_be_bytes());
        } else {
            bytes[..8].copy_from_slice(&mix(n).to_le_bytes());
            bytes[8..].copy_from_slice(&mix(n ^ 0x5555).to_le_bytes());
        }
        TraceId::from_bytes(bytes).unwrap_or_else(|_| unreachable!("nonzero"))
    }

    #[test]
    fn every_trace_put_in_is_found_and_few_others_are() {
        for padded in [false, true] {
            let held: Vec<TraceId> = (1..=50_000).map(|n| id(n, padded)).collect();
            let filter = TraceFilter::build(held.iter());
            assert!(held.iter().all(|t| filter.may_contain(t)), "a held trace was missed");
            let others = 200_000;
            let false_positives = (1_000_001..1_000_001 + others)
                .filter(|n| filter.may_contain(&id(*n, padded)))
                .count();
            let rate = false_positives as f64 / others as f64;
            // About 1 in 1,000 at 16 bits a trace; the bound leaves room for the draw.
            assert!(rate < 0.002, "padded {padded}: false-positive rate {rate}");
            assert_eq!(filter.bytes(), 50_000 * BITS_PER_TRACE / 8);
        }
    }

    #[test]
    fn byte_keys_put_in_are_found_and_few_others_are() {
        // Keys as the process indexes look them up: ids, and length-prefixed key ‖ value.
        let key = |n: u64| -> Vec<u8> {
            if n.is_multiple_of(2) {
                id(n, n.is_multiple_of(4)).as_bytes().to_vec()
            } else {
                let value = format!("o-{n}");
                let len = u8::try_from(value.len()).unwrap_or(u8::MAX);
                [&[8u8][..], b"order.id", &[len], value.as_bytes()].concat()
            }
        };
        let mut filter = TraceFilter::sized(50_000);
        for n in 1..=50_000 {
            filter.insert_bytes(&key(n));
        }
        assert!((1..=50_000).all(|n| filter.may_contain_bytes(&key(n))), "a key was missed");
        let others = 200_000;
        let false_positives =
            (1_000_001..1_000_001 + others).filter(|n| filter.may_contain_bytes(&key(*n))).count();
        let rate = false_positives as f64 / others as f64;
        assert!(rate < 0.002, "false-positive rate {rate}");
        // A key and the same key with a zero byte more are different keys.
        let mut one = TraceFilter::sized(1);
        one.insert_bytes(b"abc");
        assert!(one.may_contain_bytes(b"abc"));
        assert_ne!(hash_bytes(b"abc"), hash_bytes(b"abc\0"));
    }

    #[test]
    fn a_filter_reads_back_from_its_stored_form_and_bad_forms_are_refused() {
        let held: Vec<TraceId> = (1..=1_000).map(|n| id(n, false)).collect();
        let filter = TraceFilter::build(held.iter());
        let bytes = filter.to_bytes();
        assert_eq!(TraceFilter::from_bytes(&bytes), Ok(filter));
        assert!(TraceFilter::from_bytes(&[]).is_err());
        assert!(TraceFilter::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(TraceFilter::from_bytes(&[FILTER_VERSION]).is_err());
        let mut other = bytes.clone();
        other[0] = FILTER_VERSION + 1;
        assert!(TraceFilter::from_bytes(&other).is_err());
        let empty = TraceFilter::build([].iter());
        assert!(!empty.may_contain(&id(1, false)));
    }
}
