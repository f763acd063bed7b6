//! Checks on what clients send, before anything reaches the database. SQL is
//! parameterised anyway; these rules keep the data clean and refuse anything
//! that looks like an injection attempt with a clear 4xx.

use crate::http::error::ApiError;

/// Longest `user_id`, in bytes.
pub const MAX_USER_ID_LEN: usize = 64;
/// Longest bulk-insert prefix, in bytes (ids are `<prefix><n>`).
pub const MAX_PREFIX_LEN: usize = 40;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest e-mail, in bytes.
pub const MAX_EMAIL_LEN: usize = 254;

/// A `user_id`: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn user_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_request("invalid_user_id", "user_id is empty"));
    }
    if id.len() > MAX_USER_ID_LEN {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            format!(
                "user_id is {} bytes long; at most {MAX_USER_ID_LEN}",
                id.len()
            ),
        ));
    }
    if !id.bytes().all(is_id_byte) {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            "user_id may hold only letters, digits and _ . -",
        ));
    }
    Ok(())
}

/// A bulk prefix: 0 to 40 of the `user_id` characters.
pub fn prefix(prefix: &str) -> Result<(), ApiError> {
    if prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(is_id_byte) {
        return Err(ApiError::bad_request(
            "invalid_prefix",
            format!("prefix must be at most {MAX_PREFIX_LEN} of letters, digits and _ . -"),
        ));
    }
    Ok(())
}

/// A display name: 1 to 100 letters, digits, spaces and `. , ' -`.
pub fn name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | ',' | '\'' | '-');
    if chars == 0 || chars > MAX_NAME_CHARS || !name.chars().all(allowed) || name.trim().is_empty()
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} letters, digits, spaces and . , ' -"),
        ));
    }
    Ok(())
}

/// An e-mail: `local@domain`, plain characters only, at most 254 bytes.
pub fn email(email: &str) -> Result<(), ApiError> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
                && domain.contains('.')
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "email must look like name@example.com (letters, digits and . _ % + -)",
        ))
    }
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Result<(), ApiError>, expected: Option<&str>) {
        assert_eq!(result.err().map(|error| error.code), expected);
    }

    #[test]
    fn user_id_table() {
        check(user_id("user_42"), None);
        check(user_id("a.b-c_D9"), None);
        check(user_id(""), Some("invalid_user_id"));
        check(user_id(&"x".repeat(65)), Some("invalid_user_id"));
        check(user_id(&"x".repeat(64)), None);
        check(user_id("1; DROP TABLE users"), Some("invalid_user_id"));
        check(user_id("x' OR '1'='1"), Some("invalid_user_id"));
        check(user_id("ünï"), Some("invalid_user_id"));
    }

    #[test]
    fn name_and_email_table() {
        check(name("Ana María O'Neil"), None);
        check(name(""), Some("invalid_name"));
        check(name("   "), Some("invalid_name"));
        check(name("Robert'); DROP TABLE users;--"), Some("invalid_name"));
        check(email("ana@ecomarket.example"), None);
        check(email("ana@localhost"), Some("invalid_email"));
        check(email("a'b@x.com"), Some("invalid_email"));
        check(email("@x.com"), Some("invalid_email"));
        check(prefix("bulk-"), None);
        check(prefix(""), None);
        check(prefix("a b"), Some("invalid_prefix"));
    }
}
