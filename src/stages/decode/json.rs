//! One-pass JSON object reader that fills a fixed set of named slots.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Reject, RejectClass, Text};

/// A JSON value as far as validation needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Json<'a> {
    Str(Text<'a>),
    Int(i64),
    Float(f64),
    Bool(bool),
    #[default]
    Null,
    /// An object or array (never valid for a signal field).
    Composite,
}

impl Json<'_> {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Str(_) => "a string",
            Json::Int(_) | Json::Float(_) => "a number",
            Json::Bool(_) => "a boolean",
            Json::Null => "null",
            Json::Composite => "an object or array",
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Text::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Text::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Text::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Json::Float(v as f64), Json::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Json::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Json::Composite)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Composite)
    }
}

impl<'de> de::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Maps an object key to its slot, without allocating for the key.
struct KeySeed<'n> {
    names: &'n [String],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|n| n == v))
    }
}

struct ObjectVisitor<'n, 's, 'de> {
    names: &'n [String],
    slots: &'s mut [Option<Json<'de>>],
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(KeySeed { names: self.names })? {
            match slot {
                Some(i) => self.slots[i] = Some(map.next_value::<Json<'de>>()?),
                // Unknown fields are skipped: producers may add fields before
                // the pipeline knows them.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads `text` as one JSON object, filling `slots[i]` with the value of the
/// key `names[i]`.
pub(crate) fn read_object<'de>(
    text: &'de str,
    names: &[String],
    slots: &mut [Option<Json<'de>>],
) -> Result<(), Reject> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result = de
        .deserialize_map(ObjectVisitor { names, slots })
        .and_then(|()| de.end());
    result.map_err(|e| {
        // serde_json's data errors can quote values, which may hold personal
        // data; the reason is built from the error's class and position only.
        let what = match e.classify() {
            serde_json::error::Category::Data => "the value is not a JSON object".to_string(),
            serde_json::error::Category::Eof => "the JSON ends early".to_string(),
            _ if text.trim().is_empty() => "the value is empty".to_string(),
            _ => format!(
                "the value is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            ),
        };
        Reject::new(
            RejectClass::NotJson,
            format!("{what}; each message must be one JSON object"),
        )
    })
}
