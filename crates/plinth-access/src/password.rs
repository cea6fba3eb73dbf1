//! Passwords of local accounts: Argon2id with the `argon2` crate's
//! defaults (19 MiB, two passes, as OWASP recommends), stored as PHC
//! strings that carry their own salt and parameters.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The stored form of `password`.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` is the one `stored` was made from. A stored value
/// that is not a PHC string matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A password for a new account: 20 characters from 55 unambiguous ones
/// (about 115 bits), shown once to whoever created the account.
pub fn generate() -> Result<String, String> {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a password: {e}"))?;
    // 256 is not a multiple of the alphabet: the small bias costs under a bit.
    Ok(bytes
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_hash_and_nothing_else() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horse ", &stored));
        assert!(!verify("", &stored));
        assert!(!verify("correct horse", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash("correct horse").unwrap(), stored);
        let made = generate().unwrap();
        assert_eq!(made.chars().count(), 20);
        assert_ne!(generate().unwrap(), made);
    }
}
