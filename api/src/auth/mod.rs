//! Identity over HTTP: the `/v1/auth/*` routes. Accounts, sessions, tokens and throttling are
//! the `identity` crate's; this module turns requests into its calls and its answers into
//! responses.

pub mod routes;

pub use identity::{Auth, IdentityDb, Passwords, TokenKeys};
