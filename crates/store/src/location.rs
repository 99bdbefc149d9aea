//! Store URLs: which backend, its connect options, and redaction for messages.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::StoreError;

/// What a store URL resolves to.
pub(crate) enum Target {
    Sqlite {
        options: SqliteConnectOptions,
        in_memory: bool,
    },
    Postgres(PgConnectOptions),
}

/// Returns `url` with any password replaced by `***`, fit for logs and errors.
///
/// Handles `user:password@` in the authority and a `password=` query parameter
/// (libpq style). A string that does not parse as a URL keeps only its scheme
/// and the part after the last `@`.
///
/// ```
/// assert_eq!(
///     leaktrace_store::redact_url("postgres://lt:s3cret@db:5432/leaktrace?password=s3cret"),
///     "postgres://lt:***@db:5432/leaktrace?password=***"
/// );
/// assert_eq!(leaktrace_store::redact_url("sqlite:///var/lib/lt.sqlite"), "sqlite:///var/lib/lt.sqlite");
/// ```
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_authority() || parsed.query().is_some() => {
            if parsed.password().is_some() {
                // Cannot fail: the URL has an authority with a password already.
                let _ = parsed.set_password(Some("***"));
            }
            if parsed
                .query_pairs()
                .any(|(k, _)| k.eq_ignore_ascii_case("password"))
            {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        if k.eq_ignore_ascii_case("password") {
                            (k.into_owned(), "***".to_owned())
                        } else {
                            (k.into_owned(), v.into_owned())
                        }
                    })
                    .collect();
                parsed
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            // `url` percent-encodes `***`; show it plainly.
            parsed.as_str().replace("%2A%2A%2A", "***")
        }
        Ok(_) => url.to_owned(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_owned(),
        },
    }
}

fn invalid(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidUrl {
        url_redacted: redact_url(url),
        reason: reason.into(),
    }
}

/// Parses a store URL into the backend and its connect options.
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let lower = url.get(..14).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        let rest = url["sqlite:".len()..].trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid(url, "no database path after `sqlite:`"));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| invalid(url, format!("bad SQLite URL ({e})")))?;
        let in_memory = path == ":memory:" || rest.contains("mode=memory");
        Ok(Target::Sqlite { options, in_memory })
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| invalid(url, format!("bad PostgreSQL URL ({e})")))?;
        Ok(Target::Postgres(options))
    } else {
        let reason = match url.find(':') {
            Some(i)
                if i > 0
                    && url[..i]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("unsupported scheme `{}`", &url[..i])
            }
            _ => "no scheme".to_owned(),
        };
        Err(invalid(url, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://lt:hunter2@127.0.0.1:55432/lt"),
            "postgres://lt:***@127.0.0.1:55432/lt"
        );
        assert_eq!(
            redact_url("postgresql://lt@localhost/lt"),
            "postgresql://lt@localhost/lt"
        );
    }

    #[test]
    fn redacts_query_password() {
        let r = redact_url("postgres://localhost/lt?user=lt&password=hunter2&sslmode=disable");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("password=***"), "{r}");
        assert!(r.contains("sslmode=disable"), "{r}");
    }

    #[test]
    fn redacts_unparseable() {
        let r = redact_url("postgres://lt:hun ter2@[bad/lt");
        assert!(!r.contains("hun ter2"), "{r}");
    }

    #[test]
    fn sqlite_urls() {
        for url in [
            "sqlite:///tmp/x.sqlite",
            "sqlite:x.sqlite",
            "sqlite:dir/x.sqlite",
            "sqlite::memory:",
            "SQLite:x.sqlite",
        ] {
            assert!(
                matches!(parse(url), Ok(Target::Sqlite { .. })),
                "{url} should parse"
            );
        }
        assert!(matches!(
            parse("sqlite::memory:"),
            Ok(Target::Sqlite {
                in_memory: true,
                ..
            })
        ));
        assert!(matches!(
            parse("sqlite:"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse("sqlite:x.db?bogus=1"),
            Err(StoreError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn postgres_urls() {
        for url in [
            "postgres://lt:pw@127.0.0.1:55432/lt",
            "postgresql://localhost/lt",
        ] {
            assert!(matches!(parse(url), Ok(Target::Postgres(_))), "{url}");
        }
    }

    #[test]
    fn invalid_url_lists_schemes_and_hides_password() {
        let err = match parse("mysql://root:hunter2@db/lt") {
            Err(e) => e,
            Ok(_) => panic!("mysql must be rejected"),
        };
        let msg = err.to_string();
        assert!(msg.contains("unsupported scheme `mysql`"), "{msg}");
        assert!(msg.contains("sqlite:///"), "{msg}");
        assert!(msg.contains("postgres://"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!format!("{err:?}").contains("hunter2"));

        let msg = match parse("/var/lib/lt.sqlite") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a bare path must be rejected"),
        };
        assert!(msg.contains("no scheme"), "{msg}");
    }
}
