//! Deserializers that accept exactly what the OpenAPI schema promises. JSON Schema's
//! `integer` includes `3.0`, and a `uniqueItems` array must be refused when it repeats an item
//! rather than silently deduplicated. The number readers live in `domain::de`, since domain
//! types that are request bodies use them too.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, Error, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub use domain::de::{opt_small, opt_u16, small};

/// A `PATCH` field that may be cleared: absent → `None` (with `#[serde(default)]`), `null` →
/// `Some(None)`, a value → `Some(Some(v))`.
pub fn patch<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn patch_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u16>>, D::Error> {
    opt_u16(d).map(Some)
}

/// A nested object. serde's derived structs (and internally tagged enums) also accept an array
/// of their fields in order, which the OpenAPI schema does not allow: `{"physiology": [null]}`
/// must be refused, not read as "no change".
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    if !value.is_object() {
        return Err(D::Error::custom(format!(
            "expected an object, got {}",
            kind(&value)
        )));
    }
    T::deserialize(value).map_err(D::Error::custom)
}

/// [`object`], or `null` / absent (with `#[serde(default)]`).
pub fn opt_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(value) => object(value).map(Some).map_err(D::Error::custom),
    }
}

/// An array of [`object`]s.
pub fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Vec::<serde_json::Value>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, value)| object(value).map_err(|e| D::Error::custom(format!("item {i}: {e}"))))
        .collect()
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A set given as an array in which no item repeats.
pub fn opt_unique_set<'de, D, T>(d: D) -> Result<Option<BTreeSet<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Ord,
{
    let Some(items) = Option::<Vec<T>>::deserialize(d)? else {
        return Ok(None);
    };
    let count = items.len();
    let set: BTreeSet<T> = items.into_iter().collect();
    if set.len() != count {
        return Err(D::Error::custom("items must not repeat"));
    }
    Ok(Some(set))
}

/// A request body of `T`'s fields and no others: what `#[serde(deny_unknown_fields)]` does, for
/// a `T` that cannot say it because it is also flattened into an event and a read (a domain
/// values struct, D31). Its OpenAPI schema is `T`'s with `additionalProperties: false`, named
/// `CheckInBody` for `CheckInValues`.
pub struct Strict<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Strict<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        strict(d).map(Strict)
    }
}

impl<T: ToSchema> PartialSchema for Strict<T> {
    fn schema() -> RefOr<Schema> {
        match T::schema() {
            RefOr::T(Schema::Object(mut object)) => {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
                RefOr::T(Schema::Object(object))
            }
            other => other,
        }
    }
}

impl<T: ToSchema> ToSchema for Strict<T> {
    fn name() -> Cow<'static, str> {
        format!("{}Body", T::name().trim_end_matches("Values")).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(schemas);
    }
}

/// `T` from an object with none but `T`'s own fields. The refusal is serde's own, raised while
/// the key is read, so the error names the field exactly as the derived one does.
fn strict<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(StrictDeserializer(d))
}

struct StrictDeserializer<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for StrictDeserializer<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, StrictVisitor { visitor, fields })
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct StrictVisitor<V> {
    visitor: V,
    fields: &'static [&'static str],
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(KnownKeys {
            map,
            fields: self.fields,
        })
    }
}

struct KnownKeys<A> {
    map: A,
    fields: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for KnownKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.map.next_key_seed(KnownKey {
            seed,
            fields: self.fields,
        })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

struct KnownKey<K> {
    seed: K,
    fields: &'static [&'static str],
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KnownKey<K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KnownKey<K> {
    type Value = K::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<K::Value, E> {
        if self.fields.contains(&key) {
            self.seed.deserialize(key.into_deserializer())
        } else {
            Err(E::unknown_field(key, self.fields))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::Strict;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::small")]
        a: u8,
        #[serde(default, deserialize_with = "super::opt_small")]
        b: Option<u8>,
        #[serde(default, deserialize_with = "super::opt_unique_set")]
        c: Option<std::collections::BTreeSet<u8>>,
    }

    #[derive(Deserialize, Debug)]
    struct P {
        #[serde(default, deserialize_with = "super::patch")]
        a: Option<Option<f64>>,
        #[serde(default, deserialize_with = "super::patch_u16")]
        b: Option<Option<u16>>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Denied {
        a: Option<f64>,
        #[serde(default, deserialize_with = "super::opt_small")]
        b: Option<u8>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Open {
        a: Option<f64>,
        #[serde(default, deserialize_with = "super::opt_small")]
        b: Option<u8>,
    }

    /// `strict` answers as `deny_unknown_fields` does, the path to the field included.
    #[test]
    fn strict_refuses_what_deny_unknown_fields_refuses() {
        for body in [
            r#"{"a": 1.5, "b": 3.0}"#,
            r#"{}"#,
            r#"{"a": 1.5, "c": 1}"#,
            r#"{"c": "x", "a": "y"}"#,
            r#"{"a": "y", "c": "x"}"#,
            r#"{"b": 3.5}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"[1.5, 2]"#,
            r#"3"#,
        ] {
            // axum's reader, as `crate::extract::Json` uses it: errors carry the field's path.
            let denied = axum::Json::<Denied>::from_bytes(body.as_bytes())
                .map(|axum::Json(d)| d)
                .map_err(|e| e.body_text());
            let strict = axum::Json::<Strict<Open>>::from_bytes(body.as_bytes())
                .map(|axum::Json(Strict(o))| Denied { a: o.a, b: o.b })
                .map_err(|e| e.body_text());
            let clean = |r: Result<Denied, String>| r.map_err(|e| e.replace("Denied", "Open"));
            assert_eq!(clean(strict), clean(denied), "{body}");
        }
    }

    #[test]
    fn patch_fields_tell_absent_from_null() {
        let p: P = serde_json::from_str(r#"{"a": null, "b": 188.0}"#).unwrap();
        assert_eq!((p.a, p.b), (Some(None), Some(Some(188))));
        let p: P = serde_json::from_str(r#"{"b": null}"#).unwrap();
        assert_eq!((p.a, p.b), (None, Some(None)));
        assert!(serde_json::from_str::<P>(r#"{"b": 1.5}"#).is_err());
    }

    #[test]
    fn whole_floats_are_integers_and_repeats_are_refused() {
        let t: T = serde_json::from_str(r#"{"a": 3.0, "b": null, "c": [1, 2]}"#).unwrap();
        assert_eq!((t.a, t.b, t.c.unwrap().len()), (3, None, 2));
        let t: T = serde_json::from_str(r#"{"a": 3}"#).unwrap();
        assert_eq!((t.a, t.b), (3, None));
        assert!(serde_json::from_str::<T>(r#"{"a": 3.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 300}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 1, "c": [1, 1]}"#).is_err());
    }

    #[derive(Deserialize, Debug, PartialEq, Default)]
    struct Inner {
        #[serde(default)]
        x: Option<f64>,
        #[serde(default)]
        y: Option<f64>,
    }

    #[derive(Deserialize, Debug)]
    struct Outer {
        #[serde(default, deserialize_with = "super::opt_object")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "super::objects")]
        many: Vec<Inner>,
    }

    #[test]
    fn nested_structs_are_objects_only() {
        // The derived Deserialize alone takes the array form: the reason for `object`.
        assert_eq!(
            serde_json::from_str::<Inner>("[null, 2.0]").unwrap(),
            Inner {
                x: None,
                y: Some(2.0)
            }
        );
        let o: Outer =
            serde_json::from_str(r#"{"one": {"x": 1.0}, "many": [{}, {"y": 3}]}"#).unwrap();
        assert_eq!(o.one.unwrap().x, Some(1.0));
        assert_eq!(o.many.len(), 2);
        let o: Outer = serde_json::from_str(r#"{"one": null}"#).unwrap();
        assert!(o.one.is_none() && o.many.is_empty());
        for refused in [
            r#"{"one": [null, null]}"#,
            r#"{"one": 3}"#,
            r#"{"many": [[1.0]]}"#,
            r#"{"many": [{}, "x"]}"#,
        ] {
            let err = serde_json::from_str::<Outer>(refused)
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected an object"), "{refused}: {err}");
        }
    }
}
