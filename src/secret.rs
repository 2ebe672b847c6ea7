//! The one type for every value that can hold a password: a database URL, an SMTP URL, a
//! Secrets Manager value, a `--notify` target. Its `Display` and `Debug` never show the secret —
//! a URL shows with its password replaced, anything else as `********` — so a `tracing::debug!(?x)`
//! or an error message cannot leak it. Code that needs the value calls [`Secret::expose`].
//! A password inside a URL must be percent-encoded (`/ ? # @` as `%2F %3F %23 %40`), as libpq
//! requires too; the user info is whatever precedes the last `@` of the authority.

use std::fmt;
use std::str::FromStr;

/// What a hidden value shows as.
pub const HIDDEN: &str = "********";

/// A string that may hold a password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must use it (connecting, authenticating).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value as it may be shown: a URL (`scheme://user:pass@host…`) with the password
    /// replaced by `********`; anything else that is not a URL entirely hidden.
    pub fn redacted(&self) -> String {
        redact_url(&self.0).unwrap_or_else(|| HIDDEN.to_string())
    }
}

/// `scheme://user:password@rest` → `scheme://user:********@rest`; a URL without a password is
/// shown whole; `None` when the text is not of that shape (so it is hidden entirely).
fn redact_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    // The authority ends at the first '/', '?' or '#'; user info ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        if tail_has_password(tail) {
            let path = tail.split_once('?').map_or(tail, |(path, _)| path);
            return Some(format!("{scheme}://{authority}{path}?{HIDDEN}"));
        }
        return Some(format!("{scheme}://{rest}"));
    };
    let (user_info, host) = authority.split_at(at);
    let user = user_info
        .split_once(':')
        .map_or(user_info, |(user, _)| user);
    let shown = if user_info.contains(':') {
        format!("{user}:{HIDDEN}")
    } else {
        user.to_string()
    };
    if tail_has_password(tail) {
        return Some(format!("{scheme}://{shown}{host}?{HIDDEN}"));
    }
    Some(format!("{scheme}://{shown}{host}{tail}"))
}

/// True when a query string carries a password parameter (`?password=`), which we never show.
fn tail_has_password(tail: &str) -> bool {
    tail.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.to_ascii_lowercase().starts_with("password="))
    })
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_password() {
        let cases = [
            (
                "postgres://alice:pw-XYZ@db.example.com:5432/stocks?sslmode=require",
                "postgres://alice:********@db.example.com:5432/stocks?sslmode=require",
            ),
            (
                "smtp://u:p%40ss-XYZ@mail:25?from=a@b&to=c@d,e@f",
                "smtp://u:********@mail:25?from=a@b&to=c@d,e@f",
            ),
            (
                "postgres://db/stocks?user=x&password=pw-XYZ",
                "postgres://db/stocks?********",
            ),
            ("postgres://bob@db/x", "postgres://bob@db/x"),
            ("pw-XYZ", HIDDEN),
            ("{\"password\":\"pw-XYZ\"}", HIDDEN),
        ];
        for (value, shown) in cases {
            let secret = Secret::new(value);
            assert_eq!(secret.to_string(), shown);
            assert!(!format!("{secret:?}").contains("XYZ"), "{secret:?}");
            assert_eq!(secret.expose(), value);
        }
    }

    #[test]
    fn generated_passwords_never_show() {
        use proptest::prelude::*;
        proptest!(|(user in "[a-z]{1,8}", password in "[!-~&&[^/?#@]]{1,20}", host in "[a-z]{1,10}")| {
            let marker = format!("Q{password}Q");
            let url = format!("postgres://{user}:{marker}@{host}:5432/db");
            let secret = Secret::new(url);
            let shown = secret.to_string();
            let debug = format!("{:?}", secret);
            prop_assert!(!shown.contains(&marker), "{}", shown);
            prop_assert!(!debug.contains(&marker), "{}", debug);
        });
    }
}
