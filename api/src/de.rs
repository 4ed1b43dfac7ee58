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
}
