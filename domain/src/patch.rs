//! Partial updates (HTTP `PATCH`), merged by the aggregate into its own current values so that
//! two updates of different fields cannot undo each other (docs/decisions.md, "PATCH is decided
//! on the write side").

use serde::{Deserialize, Serialize};

/// What a partial update does to one optional value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change<T> {
    /// The field was absent: the current value stays.
    #[default]
    Keep,
    /// The field was `null`: the value is now unknown.
    Clear,
    Set(T),
}

impl<T> Change<T> {
    /// The value after the change.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Change::Keep => current,
            Change::Clear => None,
            Change::Set(v) => Some(v),
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Change::Keep)
    }
}

/// From a JSON merge patch field: absent (`None`), `null` (`Some(None)`) or a value.
impl<T> From<Option<Option<T>>> for Change<T> {
    fn from(field: Option<Option<T>>) -> Self {
        match field {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(v)) => Change::Set(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keeps_null_clears_a_value_sets() {
        assert_eq!(Change::from(None::<Option<u8>>).apply(Some(3)), Some(3));
        assert_eq!(Change::from(Some(None::<u8>)).apply(Some(3)), None);
        assert_eq!(Change::from(Some(Some(4u8))).apply(Some(3)), Some(4));
        assert_eq!(Change::Set(4u8).apply(None), Some(4));
    }
}
