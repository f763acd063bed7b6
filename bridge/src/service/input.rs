//! Checks on what clients send, before anything reaches the database. SQL is
//! parameterised anyway; these rules keep the data clean and refuse anything
//! that looks like an injection attempt with a clear 4xx.

use ecoshard_core::wire::{BulkInsert, Consistency, GenerateUsers, UserSample};
use tokio_postgres::types::PgLsn;

/// Longest `user_id`, in bytes.
pub(crate) const MAX_USER_ID_LEN: usize = 64;
/// Longest bulk-insert prefix, in bytes (ids are `<prefix><n>`).
pub(crate) const MAX_PREFIX_LEN: usize = 40;
/// Longest name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 100;
/// Longest e-mail, in bytes.
pub(crate) const MAX_EMAIL_LEN: usize = 254;

/// A value of a request that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// `user_id` is empty.
    UserIdEmpty,
    /// `user_id` is this many bytes long, over [`MAX_USER_ID_LEN`].
    UserIdTooLong(usize),
    /// `user_id` holds a character outside `A-Z a-z 0-9 _ . -`.
    UserIdCharacters,
    /// A bulk prefix over [`MAX_PREFIX_LEN`] or outside the id characters.
    Prefix,
    /// A name that is not 1 to [`MAX_NAME_CHARS`] plain characters.
    Name,
    /// An e-mail that does not look like one.
    Email,
    /// A bulk count outside 1 to [`BulkInsert::MAX_COUNT`].
    Count(u64),
    /// A generated data set's count outside 1 to [`GenerateUsers::MAX_COUNT`].
    GenerateCount(u64),
    /// A sample count outside 1 to [`UserSample::MAX_COUNT`].
    SampleCount(u64),
    /// A consistency that is not one (its first 40 characters).
    Consistency(String),
    /// An LSN not of the form `0/3000148`.
    Lsn,
    /// An LSN with a consistency other than read-your-writes.
    LsnWithoutReadYourWrites,
    /// A token naming a cluster the bridge does not operate: the cluster
    /// (its first 40 characters) and those it operates.
    LsnCluster {
        /// As the token named it.
        cluster: String,
        /// The clusters operated, the default first.
        clusters: Vec<String>,
    },
    /// A stop mode that is neither `fast` nor `immediate` (its first 40
    /// characters).
    StopMode(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::UserIdEmpty => f.write_str("user_id is empty"),
            Invalid::UserIdTooLong(len) => {
                write!(f, "user_id is {len} bytes long; at most {MAX_USER_ID_LEN}")
            }
            Invalid::UserIdCharacters => {
                f.write_str("user_id may hold only letters, digits and _ . -")
            }
            Invalid::Prefix => write!(
                f,
                "prefix must be at most {MAX_PREFIX_LEN} of letters, digits and _ . -"
            ),
            Invalid::Name => write!(
                f,
                "name must be 1 to {MAX_NAME_CHARS} letters, digits, spaces and . , ' -"
            ),
            Invalid::Email => {
                f.write_str("email must look like name@example.com (letters, digits and . _ % + -)")
            }
            Invalid::Count(count) => write!(
                f,
                "count must be 1 to {}, not {count}",
                BulkInsert::MAX_COUNT
            ),
            Invalid::GenerateCount(count) => write!(
                f,
                "count must be 1 to {}, not {count}",
                ecoshard_core::thousands(GenerateUsers::MAX_COUNT)
            ),
            Invalid::SampleCount(count) => write!(
                f,
                "count must be 1 to {} ids to sample, not {count}",
                UserSample::MAX_COUNT
            ),
            Invalid::Consistency(name) => write!(
                f,
                "unknown consistency {name:?}: use {}",
                names(&Consistency::ALL.map(Consistency::name))
            ),
            Invalid::Lsn => f.write_str("lsn must look like 0/3000148"),
            Invalid::LsnWithoutReadYourWrites => {
                f.write_str("lsn is only for consistency=read-your-writes")
            }
            Invalid::LsnCluster { cluster, clusters } => {
                let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
                write!(
                    f,
                    "lsn names cluster {cluster:?}, which this bridge does not operate: \
                     the clusters are {}",
                    names(&clusters)
                )
            }
            Invalid::StopMode(mode) => write!(
                f,
                "unknown stop mode {mode:?}: use fast (a clean shutdown) or immediate (like a crash)"
            ),
        }
    }
}

/// A `user_id`: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub(crate) fn user_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid::UserIdEmpty);
    }
    if id.len() > MAX_USER_ID_LEN {
        return Err(Invalid::UserIdTooLong(id.len()));
    }
    if !id.bytes().all(is_id_byte) {
        return Err(Invalid::UserIdCharacters);
    }
    Ok(())
}

/// A bulk prefix: 0 to 40 of the `user_id` characters.
pub(crate) fn prefix(prefix: &str) -> Result<(), Invalid> {
    if prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(is_id_byte) {
        return Err(Invalid::Prefix);
    }
    Ok(())
}

/// A bulk count: 1 to [`BulkInsert::MAX_COUNT`].
pub(crate) fn count(count: u64) -> Result<(), Invalid> {
    if count == 0 || count > BulkInsert::MAX_COUNT {
        return Err(Invalid::Count(count));
    }
    Ok(())
}

/// A generated data set's count: 1 to [`GenerateUsers::MAX_COUNT`].
pub(crate) fn generate_count(count: u64) -> Result<(), Invalid> {
    if count == 0 || count > GenerateUsers::MAX_COUNT {
        return Err(Invalid::GenerateCount(count));
    }
    Ok(())
}

/// A sample's count: 1 to [`UserSample::MAX_COUNT`].
pub(crate) fn sample_count(count: u64) -> Result<(), Invalid> {
    if count == 0 || count > UserSample::MAX_COUNT {
        return Err(Invalid::SampleCount(count));
    }
    Ok(())
}

/// A display name: 1 to 100 letters, digits, spaces and `. , ' -`.
pub(crate) fn name(name: &str) -> Result<(), Invalid> {
    let chars = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | ',' | '\'' | '-');
    if chars == 0 || chars > MAX_NAME_CHARS || !name.chars().all(allowed) || name.trim().is_empty()
    {
        return Err(Invalid::Name);
    }
    Ok(())
}

/// An e-mail: `local@domain`, plain characters only, at most 254 bytes.
pub(crate) fn email(email: &str) -> Result<(), Invalid> {
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
    if valid { Ok(()) } else { Err(Invalid::Email) }
}

/// A read's consistency (`eventual` when none is given) and, for
/// read-your-writes, the LSN it must see (`None`: none given).
pub(crate) fn read_level(
    consistency: Option<&str>,
    lsn: Option<&str>,
) -> Result<(Consistency, Option<ReadAfter>), Invalid> {
    let consistency = match consistency {
        None => Consistency::Eventual,
        Some(name) => Consistency::from_name(name)
            .ok_or_else(|| Invalid::Consistency(name.chars().take(40).collect()))?,
    };
    let lsn = match (lsn, consistency) {
        (Some(text), Consistency::ReadYourWrites) => Some(read_after(text)?),
        (Some(_), _) => return Err(Invalid::LsnWithoutReadYourWrites),
        (None, _) => None,
    };
    Ok((consistency, lsn))
}

/// A read-your-writes token: what a read must see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadAfter {
    /// The cluster the position is of (`None`: a bare LSN, which means `c1`).
    pub(crate) cluster: Option<String>,
    /// The WAL position.
    pub(crate) lsn: u64,
}

/// A token: `0/3000148` (a position of `c1`) or `c2/0/3000148`.
fn read_after(text: &str) -> Result<ReadAfter, Invalid> {
    let (cluster, lsn) = match text.split('/').count() {
        2 => (None, text),
        3 => {
            let (cluster, lsn) = text.split_once('/').ok_or(Invalid::Lsn)?;
            let plain = !cluster.is_empty()
                && cluster.len() <= 40
                && cluster
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
            if !plain {
                return Err(Invalid::Lsn);
            }
            (Some(cluster.to_owned()), lsn)
        }
        _ => return Err(Invalid::Lsn),
    };
    let lsn = lsn
        .parse::<PgLsn>()
        .map(u64::from)
        .map_err(|_| Invalid::Lsn)?;
    Ok(ReadAfter { cluster, lsn })
}

/// A node's stop mode: `fast` (the default, a clean shutdown) or
/// `immediate` (like a crash); whether it is immediate.
pub(crate) fn stop_mode(mode: Option<&str>) -> Result<bool, Invalid> {
    match mode {
        None | Some("fast") => Ok(false),
        Some("immediate") => Ok(true),
        Some(other) => Err(Invalid::StopMode(other.chars().take(40).collect())),
    }
}

fn names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Result<(), Invalid>, expected: Option<Invalid>) {
        assert_eq!(result.err(), expected);
    }

    #[test]
    fn user_id_table() {
        check(user_id("user_42"), None);
        check(user_id("a.b-c_D9"), None);
        check(user_id(""), Some(Invalid::UserIdEmpty));
        check(user_id(&"x".repeat(65)), Some(Invalid::UserIdTooLong(65)));
        check(user_id(&"x".repeat(64)), None);
        check(
            user_id("1; DROP TABLE users"),
            Some(Invalid::UserIdCharacters),
        );
        check(user_id("x' OR '1'='1"), Some(Invalid::UserIdCharacters));
        check(user_id("ünï"), Some(Invalid::UserIdCharacters));
    }

    #[test]
    fn name_and_email_table() {
        check(name("Ana María O'Neil"), None);
        check(name(""), Some(Invalid::Name));
        check(name("   "), Some(Invalid::Name));
        check(name("Robert'); DROP TABLE users;--"), Some(Invalid::Name));
        check(email("ana@ecomarket.example"), None);
        check(email("ana@localhost"), Some(Invalid::Email));
        check(email("a'b@x.com"), Some(Invalid::Email));
        check(email("@x.com"), Some(Invalid::Email));
        check(prefix("bulk-"), None);
        check(prefix(""), None);
        check(prefix("a b"), Some(Invalid::Prefix));
        check(count(0), Some(Invalid::Count(0)));
        check(count(10_000), None);
        check(count(10_001), Some(Invalid::Count(10_001)));
        check(generate_count(0), Some(Invalid::GenerateCount(0)));
        check(generate_count(1), None);
        check(generate_count(10_000_000), None);
        check(
            generate_count(10_000_001),
            Some(Invalid::GenerateCount(10_000_001)),
        );
    }

    #[test]
    fn read_levels_and_stop_modes() {
        let level = |consistency, lsn| read_level(consistency, lsn);
        assert_eq!(level(None, None), Ok((Consistency::Eventual, None)));
        assert_eq!(level(Some("strong"), None), Ok((Consistency::Strong, None)));
        let after = |cluster: Option<&str>, lsn| ReadAfter {
            cluster: cluster.map(str::to_owned),
            lsn,
        };
        assert_eq!(
            level(Some("read-your-writes"), Some("0/3000148")),
            Ok((Consistency::ReadYourWrites, Some(after(None, 0x300_0148))))
        );
        assert_eq!(
            level(Some("read-your-writes"), Some("c2/0/3000148")),
            Ok((
                Consistency::ReadYourWrites,
                Some(after(Some("c2"), 0x300_0148))
            ))
        );
        for bad in ["/0/1", "c 2/0/1", "c2/0/1/2", "c2//0/1"] {
            assert_eq!(
                level(Some("read-your-writes"), Some(bad)),
                Err(Invalid::Lsn),
                "{bad}"
            );
        }
        assert_eq!(
            level(Some("Strong"), None),
            Err(Invalid::Consistency("Strong".into()))
        );
        assert_eq!(
            level(Some("read-your-writes"), Some("3000148")),
            Err(Invalid::Lsn)
        );
        assert_eq!(
            level(Some("strong"), Some("0/1")),
            Err(Invalid::LsnWithoutReadYourWrites)
        );
        assert_eq!(stop_mode(None), Ok(false));
        assert_eq!(stop_mode(Some("immediate")), Ok(true));
        assert_eq!(
            stop_mode(Some("kill")),
            Err(Invalid::StopMode("kill".into()))
        );
        assert!(
            Invalid::Consistency("x".into())
                .to_string()
                .ends_with("use eventual, read-your-writes or strong")
        );
    }
}
