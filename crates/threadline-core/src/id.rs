//! Trace and span identifiers as validated newtypes: a value of these types is never all
//! zeros and always has the right length (W3C Trace Context, OTLP).

use std::fmt;
use std::str::FromStr;

/// Why bytes or text could not become an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be {expected} bytes, got {actual}")]
    Length { expected: usize, actual: usize },
    #[error("must not be all zeros")]
    AllZeros,
    #[error("must be {expected} hex digits, got {actual} characters")]
    HexLength { expected: usize, actual: usize },
    #[error("is not hex: unexpected character {0:?}")]
    HexDigit(char),
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// An id from its bytes; all zeros is invalid.
            pub fn from_bytes(bytes: [u8; $len]) -> Result<Self, IdError> {
                if bytes == [0; $len] {
                    return Err(IdError::AllZeros);
                }
                Ok(Self(bytes))
            }

            /// An id from a slice that must have exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes
                    .try_into()
                    .map_err(|_| IdError::Length { expected: $len, actual: bytes.len() })?;
                Self::from_bytes(array)
            }

            /// An id from lowercase or uppercase hex of exactly `2 * LEN` digits.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let mut bytes = [0u8; $len];
                decode_hex(text, &mut bytes)?;
                Self::from_bytes(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, as in W3C Trace Context and OTLP JSON.
            pub fn to_hex(&self) -> String {
                let mut out = String::with_capacity($len * 2);
                for byte in self.0 {
                    out.push(HEX[usize::from(byte >> 4)] as char);
                    out.push(HEX[usize::from(byte & 0xf)] as char);
                }
                out
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }
    };
}

id_type!(
    /// A W3C / OpenTelemetry trace id: 16 bytes, not all zeros.
    TraceId,
    16
);
id_type!(
    /// A W3C / OpenTelemetry span id: 8 bytes, not all zeros.
    SpanId,
    8
);

impl TraceId {
    /// Widens a 64-bit trace id (Zipkin, B3, Jaeger) to 128 bits the way OpenTelemetry does:
    /// the 8 bytes become the low half, the high half is zero.
    pub fn from_u64_bytes(low: [u8; 8]) -> Result<Self, IdError> {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&low);
        Self::from_bytes(bytes)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(text: &str, out: &mut [u8]) -> Result<(), IdError> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return Err(IdError::HexLength { expected: out.len() * 2, actual: text.chars().count() });
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Ok(())
}

fn hex_value(digit: u8) -> Result<u8, IdError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        other => Err(IdError::HexDigit(char::from(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_all_zeros_and_bad_lengths() {
        assert_eq!(TraceId::from_bytes([0; 16]), Err(IdError::AllZeros));
        assert_eq!(SpanId::from_slice(&[1; 7]), Err(IdError::Length { expected: 8, actual: 7 }));
        assert_eq!(TraceId::from_hex("abc"), Err(IdError::HexLength { expected: 32, actual: 3 }));
        assert_eq!(SpanId::from_hex("00000000000000zz"), Err(IdError::HexDigit('z')));
        assert_eq!(SpanId::from_hex("0000000000000000"), Err(IdError::AllZeros));
    }

    #[test]
    fn widens_64_bit_trace_ids_into_the_low_half() {
        let id = TraceId::from_u64_bytes([0, 0, 0, 0, 0, 0, 0, 0x2a]).unwrap();
        assert_eq!(id.to_hex(), "0000000000000000000000000000002a");
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in any::<[u8; 16]>()) {
            prop_assume!(bytes != [0; 16]);
            let id = TraceId::from_bytes(bytes).unwrap();
            prop_assert_eq!(TraceId::from_hex(&id.to_hex()).unwrap(), id);
            prop_assert_eq!(TraceId::from_hex(&id.to_hex().to_uppercase()).unwrap(), id);
        }
    }
}
