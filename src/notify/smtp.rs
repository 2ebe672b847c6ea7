//! Direct email through SMTP with lettre, for sites without SNS.
//!
//! `smtp://host[:port]?from=ADDR&to=ADDR[,ADDR...][&tls=starttls|tls|none]`; `smtps://` means
//! `tls=tls`. Default tls: starttls, port 587 (465 for tls, 25 for none). Credentials come from
//! SMTP_USERNAME / SMTP_PASSWORD (or user:password in the URL, never printed).

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Notice;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption (local relays, tests).
    None,
}

/// A parsed `smtp://` target.
#[derive(Clone, PartialEq)]
pub struct SmtpTarget {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Connection security.
    pub tls: Security,
    username: Option<String>,
    password: Option<Secret>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpTarget({self})")
    }
}

impl std::fmt::Display for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "smtp://{}:{} (to {})",
            self.host,
            self.port,
            self.to.join(", ")
        )
    }
}

impl SmtpTarget {
    /// Parses a target URL.
    pub fn parse(text: &str) -> Result<SmtpTarget> {
        // The URL may carry the password: errors show it the one redacted way.
        let shown = Secret::new(text);
        let bad = |why: &str| Error::Config(format!("notify target {shown}: {why}"));
        let url = url::Url::parse(text).map_err(|_| bad("not a valid URL"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_string();
        let mut tls = if url.scheme() == "smtps" {
            Security::Tls
        } else {
            Security::StartTls
        };
        let (mut from, mut to) = (None, Vec::new());
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "from" => from = Some(value.to_string()),
                "to" => to.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                ),
                "tls" => {
                    tls = match value.as_ref() {
                        "starttls" => Security::StartTls,
                        "tls" => Security::Tls,
                        "none" => Security::None,
                        _ => return Err(bad("tls must be starttls, tls or none")),
                    }
                }
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        let from = from.ok_or_else(|| bad("missing from=ADDRESS"))?;
        if to.is_empty() {
            return Err(bad("missing to=ADDRESS[,ADDRESS]"));
        }
        for address in std::iter::once(&from).chain(to.iter()) {
            address
                .parse::<Mailbox>()
                .map_err(|_| bad(&format!("{address:?} is not an email address")))?;
        }
        let port = url.port().unwrap_or(match tls {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::None => 25,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let username = std::env::var("SMTP_USERNAME")
            .ok()
            .or_else(|| (!url.username().is_empty()).then(|| decode(url.username())));
        let password = std::env::var("SMTP_PASSWORD")
            .ok()
            .or_else(|| url.password().map(decode))
            .map(Secret::new);
        Ok(SmtpTarget {
            host,
            port,
            from,
            to,
            tls,
            username,
            password,
        })
    }

    /// Sends one notice to every recipient.
    pub async fn send(&self, notice: &Notice) -> Result<()> {
        fn fail(smtp: &SmtpTarget, err: impl std::error::Error + Send + Sync + 'static) -> Error {
            Error::Notify {
                target: smtp.to_string(),
                reason: err.to_string(),
                source: Some(Box::new(err)),
            }
        }
        let mut message = Message::builder()
            .from(self.from.parse().map_err(|e| fail(self, e))?)
            .subject(&notice.subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.parse().map_err(|e| fail(self, e))?);
        }
        let message = message
            .body(notice.body.clone())
            .map_err(|e| fail(self, e))?;
        let builder = match self.tls {
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
                .map_err(|e| fail(self, e))?,
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)
                .map_err(|e| fail(self, e))?,
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(std::time::Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            let password = password.expose().to_string();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        builder
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| fail(self, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_urls_and_hides_passwords() {
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525?from=a@x.io&to=b@x.io&tls=none").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("127.0.0.1", 2525, Security::None)
        );
        let t = SmtpTarget::parse("smtps://u:secretpw@mail.x.io?from=a@x.io&to=b@x.io").unwrap();
        assert_eq!((t.port, t.tls), (465, Security::Tls));
        assert!(!format!("{t} {t:?}").contains("secretpw"));
        let err = SmtpTarget::parse("smtp://u:secretpw@mail.x.io?to=b@x.io")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing from"), "{err}");
        assert!(!err.contains("secretpw"), "{err}");
        // The one redaction of the house (`Secret`), not a format of its own.
        assert!(err.contains("smtp://u:********@mail.x.io"), "{err}");
        if std::env::var_os("SMTP_PASSWORD").is_none() {
            // Percent-decoded from the URL, and kept as a `Secret` (its Debug hides it).
            let t = SmtpTarget::parse("smtp://u:p%40ss-XYZ@m?from=a@x.io&to=b@x.io").unwrap();
            let password = t.password.as_ref().expect("the URL's password");
            assert_eq!(password.expose(), "p@ss-XYZ");
            assert!(!format!("{password:?}").contains("XYZ"));
        }
        assert!(SmtpTarget::parse("smtp://h?from=a@x.io&to=not-an-address").is_err());
    }
}
