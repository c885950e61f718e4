//! RowBinary encoding of the row types, so that a row is encoded once, when it is accepted,
//! and the same bytes are inserted, spooled to disk and replayed. Column order is the struct's
//! field order (see `rows`); this covers exactly the types our rows use: integers, `f32`,
//! `String`, `Option` (Nullable), `Vec` (Array), fixed byte arrays (FixedString) and
//! `serde_repr` enums (Enum8).
//!
//! The way back, for the collector's spool: [`decode`] reads a whole row (to find where a row
//! ends in bytes that do not record it), and `Reader` the few leading columns that say whom a
//! row is about (`AudienceRow::subject_of`). Both fail on short or malformed bytes, never
//! panic, and allocate nothing a length prefix asks for beyond the bytes actually there.
//!
//! The clickhouse crate has the same serializer, but it is private to its `Insert`.

use serde::{
    Deserialize, Serialize,
    de::{self, DeserializeSeed, SeqAccess, Visitor},
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

/// Reads one row of type `R` from the front of `input` and advances `input` past it: the
/// inverse of [`encode`]. Used where row boundaries are not recorded (spool segments of the
/// first format, docs/reliability.md). An error leaves `input` somewhere inside the row.
pub fn decode<'de, R: Deserialize<'de>>(input: &mut &'de [u8]) -> Result<R, DecodeError> {
    let mut decoder = Decoder { reader: Reader::new(input) };
    let row = R::deserialize(&mut decoder)?;
    *input = decoder.reader.input;
    Ok(row)
}

/// Bytes that are not a RowBinary row of the requested type: too short, a length past the
/// end, text that is not UTF-8, or a type this decoder does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RowBinary: {0}")]
pub struct DecodeError(String);

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        DecodeError(message.to_string())
    }
}

fn short() -> DecodeError {
    DecodeError("the input ends inside a value".to_owned())
}

/// A cursor over RowBinary bytes: each read takes a value off the front, or returns `None`
/// (leaving the cursor where it was) when the bytes end first.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.input.len() {
            return None;
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    /// An unsigned LEB128 length; `None` past 10 bytes or beyond `usize`.
    pub(crate) fn length(&mut self) -> Option<usize> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let byte = self.u8()?;
            n |= u64::from(byte & 0x7f).checked_shl(7 * i)?;
            if byte & 0x80 == 0 {
                return usize::try_from(n).ok();
            }
        }
        None
    }

    /// A `String` column: its length, then that many bytes of UTF-8.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let len = self.length()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn remaining(&self) -> usize {
        self.input.len()
    }
}

struct Decoder<'de> {
    reader: Reader<'de>,
}

macro_rules! decode_le {
    ($($method:ident: $ty:ty => $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let bytes = self.reader.array::<{ size_of::<$ty>() }>().ok_or_else(short)?;
            visitor.$visit(<$ty>::from_le_bytes(bytes))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    decode_le!(
        deserialize_i8: i8 => visit_i8, deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32, deserialize_i64: i64 => visit_i64,
        deserialize_u8: u8 => visit_u8, deserialize_u16: u16 => visit_u16,
        deserialize_u32: u32 => visit_u32, deserialize_u64: u64 => visit_u64,
        deserialize_f32: f32 => visit_f32, deserialize_f64: f64 => visit_f64
    );

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.reader.u8().ok_or_else(short)? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(DecodeError(format!("{other} is not a Bool"))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.reader.length().ok_or_else(short)?;
        let bytes = self.reader.take(len).ok_or_else(short)?;
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError(format!("a String that is not UTF-8: {e}")))?;
        visitor.visit_borrowed_str(text)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.reader.length().ok_or_else(short)?;
        visitor.visit_borrowed_bytes(self.reader.take(len).ok_or_else(short)?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.reader.u8().ok_or_else(short)? {
            1 => visitor.visit_none(),
            0 => visitor.visit_some(self),
            other => Err(DecodeError(format!("{other} is not a Nullable marker"))),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.reader.length().ok_or_else(short)?;
        // Every element takes at least one byte: a longer array is garbage, and refusing it
        // here keeps a made-up length from reserving memory.
        if len > self.reader.remaining() {
            return Err(short());
        }
        visitor.visit_seq(Elements { decoder: self, left: len })
    }

    /// Fixed-size arrays (`[u8; 32]`): FixedString, no length prefix.
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Elements { decoder: self, left: len })
    }

    /// A row is its fields in order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Elements { decoder: self, left: fields.len() })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("RowBinary is not self-describing: a type is needed".to_owned()))
    }

    fn deserialize_char<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("char".to_owned()))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("()".to_owned()))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, _v: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError(name.to_owned()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("a map".to_owned()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(DecodeError(name.to_owned()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("an identifier".to_owned()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError("an ignored value".to_owned()))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of an array, a fixed array or a row, one after the other.
struct Elements<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
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

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Decodable {
        kind: EventType,
        flag: bool,
        n: i64,
        text: String,
        list: Vec<String>,
        missing: Option<u32>,
        present: Option<f32>,
        fixed: [u8; 3],
    }

    #[test]
    fn decodes_what_it_encodes_and_stops_at_the_row_end() {
        let row = Decodable {
            kind: EventType::Error,
            flag: true,
            n: -5,
            text: "é".repeat(100),
            list: vec!["a".into(), String::new()],
            missing: None,
            present: Some(1.5),
            fixed: [1, 2, 3],
        };
        let mut out = Vec::new();
        encode(&row, &mut out).unwrap();
        out.extend_from_slice(b"next row");
        let mut input = out.as_slice();
        assert_eq!(decode::<Decodable>(&mut input).unwrap(), row);
        assert_eq!(input, b"next row");
    }

    #[test]
    fn decoding_garbage_fails_without_panicking_or_reserving_memory() {
        #[derive(Debug, Deserialize)]
        struct List {
            _list: Vec<String>,
        }
        // An array that claims 2^62 elements: refused before anything is reserved.
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 1, b'a'];
        assert!(decode::<List>(&mut input).is_err());
        // A length that never ends.
        let mut input: &[u8] = &[0x80; 20];
        assert!(decode::<List>(&mut input).is_err());
        // A Nullable marker and a Bool that are neither 0 nor 1, an Enum8 out of range.
        assert!(decode::<Option<u8>>(&mut &[2u8, 0][..]).is_err());
        assert!(decode::<bool>(&mut &[7u8][..]).is_err());
        assert!(decode::<EventType>(&mut &[9u8][..]).is_err());
        // Pseudo-random bytes: an error or a row, never a panic.
        let mut x: u32 = 0x2545_F491;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 3) as u8
            })
            .collect();
        for start in 0..200 {
            let mut input = &noise[start..];
            let _ = decode::<Decodable>(&mut input);
            let mut input = &noise[start..];
            let _ = decode::<crate::TroubleshootingRow>(&mut input);
        }
    }

    #[test]
    fn refuses_types_the_format_lacks() {
        let mut out = Vec::new();
        assert!(encode(&std::collections::HashMap::from([(1, 2)]), &mut out).is_err());
    }
}
