//! RowBinary encoding of the row types, so that a row is encoded once, when it is accepted,
//! and the same bytes are inserted, spooled to disk and replayed. Column order is the struct's
//! field order (see `rows`); this covers exactly the types our rows use: integers, `f32`,
//! `String`, `Option` (Nullable), `Vec` (Array), fixed byte arrays (FixedString) and
//! `serde_repr` enums (Enum8).
//!
//! The clickhouse crate has the same serializer, but it is private to its `Insert`.

use serde::{
    Serialize,
    ser::{self, Impossible},
};

/// Appends one row's RowBinary encoding to `out`.
pub fn encode<R: Serialize>(row: &R, out: &mut Vec<u8>) -> Result<(), Error> {
    row.serialize(&mut Encoder { out })
}

/// A type the format (or this encoder) cannot represent; a bug in a row type, not bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RowBinary cannot encode {0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Error(message.to_string())
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    /// Unsigned LEB128: the length prefix of strings and arrays.
    fn length(&mut self, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }
}

fn unsupported<T>(what: &str) -> Result<T, Error> {
    Err(Error(what.to_owned()))
}

macro_rules! little_endian {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Error> {
            self.out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeStruct = Self;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    little_endian!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_f32: f32, serialize_f64: f64
    );

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(u8::from(v));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.length(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(1);
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        self.out.push(0);
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        let Some(len) = len else { return unsupported("a sequence of unknown length") };
        self.length(len);
        Ok(self)
    }

    /// Fixed-size arrays (`[u8; 32]`): FixedString, no length prefix.
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_char(self, _v: char) -> Result<(), Error> {
        unsupported("char")
    }
    fn serialize_i128(self, _v: i128) -> Result<(), Error> {
        unsupported("i128")
    }
    fn serialize_u128(self, _v: u128) -> Result<(), Error> {
        unsupported("u128")
    }
    fn serialize_unit(self) -> Result<(), Error> {
        unsupported("()")
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        unsupported(name)
    }
    fn serialize_unit_variant(self, name: &'static str, _i: u32, _v: &'static str) -> Result<(), Error> {
        unsupported(name)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        unsupported(name)
    }
    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct, Error> {
        unsupported(name)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unsupported(name)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        unsupported("a map")
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        unsupported(name)
    }
}

/// Sequences and tuples are their elements back to back (a sequence's length came first).
macro_rules! elements_in_order {
    ($($trait:ident),+) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )+};
}

elements_in_order!(SerializeSeq, SerializeTuple);

/// A row is its fields in order: RowBinary has no names.
impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _key: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, SaltRow};

    #[derive(Serialize)]
    struct Sample {
        kind: EventType,
        n: u16,
        text: String,
        list: Vec<String>,
        missing: Option<u32>,
        present: Option<f32>,
    }

    #[test]
    fn encodes_the_rowbinary_layout() {
        let row = Sample {
            kind: EventType::Timing,
            n: 0x0102,
            text: "é".repeat(100),
            list: vec!["a".into(), String::new()],
            missing: None,
            present: Some(1.5),
        };
        let mut out = Vec::new();
        encode(&row, &mut out).unwrap();
        let mut expected = vec![3, 0x02, 0x01];
        // 200 bytes: LEB128 0xc8 0x01.
        expected.extend_from_slice(&[0xc8, 0x01]);
        expected.extend_from_slice("é".repeat(100).as_bytes());
        expected.extend_from_slice(&[2, 1, b'a', 0]);
        expected.push(1);
        expected.push(0);
        expected.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn fixed_arrays_have_no_length_prefix() {
        let row = SaltRow { period_start: 1, period_end: 2, salt: [7; 32], created_at: 3 };
        let mut out = Vec::new();
        encode(&row, &mut out).unwrap();
        assert_eq!(out.len(), 4 + 4 + 32 + 4);
        assert_eq!(&out[8..40], &[7; 32]);
    }

    #[test]
    fn refuses_types_the_format_lacks() {
        let mut out = Vec::new();
        assert!(encode(&std::collections::HashMap::from([(1, 2)]), &mut out).is_err());
    }
}
