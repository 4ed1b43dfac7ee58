use crate::validation::ValidationError;

/// Why a command was refused. Every variant maps to one HTTP status and one CLI line; the messages
/// are written for the person who sent the command, so they name the field and the accepted range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// The command's values are out of range or inconsistent. Nothing was appended.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The thing the command addresses does not exist (or belongs to someone else: we do not say which).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The command is valid but the aggregate's state does not allow it now
    /// (registering twice, updating a deleted activity, acting on an erased athlete).
    #[error("{0}")]
    Conflict(String),
}

impl From<ValidationError> for DomainError {
    fn from(err: ValidationError) -> Self {
        DomainError::Invalid(err)
    }
}
