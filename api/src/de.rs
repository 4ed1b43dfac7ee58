//! Deserializers that accept exactly what the OpenAPI schema promises. JSON Schema's
//! `integer` includes `3.0`, and a `uniqueItems` array must be refused when it repeats an item
//! rather than silently deduplicated.

use std::collections::BTreeSet;

use serde::de::{Deserialize, Deserializer, Error};

fn integral<'de, D: Deserializer<'de>>(v: f64, max: f64) -> Result<u64, D::Error> {
    if v.fract() == 0.0 && (0.0..=max).contains(&v) {
        Ok(v as u64)
    } else {
        Err(D::Error::custom(format!(
            "expected a whole number between 0 and {max}, got {v}"
        )))
    }
}

/// A small whole number, written `3` or `3.0`.
pub fn small<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = f64::deserialize(d)?;
    integral::<D>(v, f64::from(u8::MAX)).map(|v| v as u8)
}

pub fn opt_small<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) => integral::<D>(v, f64::from(u8::MAX)).map(|v| Some(v as u8)),
    }
}

pub fn opt_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) => integral::<D>(v, f64::from(u16::MAX)).map(|v| Some(v as u16)),
    }
}

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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

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
