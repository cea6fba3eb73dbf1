//! Identity and access, as rules and values: who a caller is
//! ([`Principal`]), what they ask to do ([`Action`]), and the one function
//! that decides ([`authorize`]); and the secrets of API tokens ([`token`]).
//!
//! Architecture invariant: every decision about access is made here, and
//! nowhere else; callers describe the action and its resource, and show
//! the refusal's reason to the caller. No I/O: the store keeps tokens and
//! the audit log, the server finds the principal.

pub mod oidc;
pub mod password;
mod rules;
pub mod token;

pub use rules::{Action, Denied, Principal, Role, Scope, Subject, authorize};
