//! Hash maps with foldhash: several times faster than the standard SipHash on the small keys
//! the engine and the store index by (ids, interned names, short byte keys). Each map is
//! seeded at random, which keeps colliding ids from being computed in advance (foldhash does
//! not claim the full HashDoS resistance of SipHash).

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
