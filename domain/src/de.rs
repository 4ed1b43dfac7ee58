//! Deserializers for numbers that JSON may write either way: JSON Schema's `integer` includes
//! `3.0`, so a small whole number is read through `f64`. Shared by the API's request bodies and
//! the domain types they are made of (check-in scales, D31).

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
