//! Telling people how a run went: one [`Notice`] built from a run's summary (or from an error that
//! stopped the run before it started), delivered to every configured target exactly once — Amazon
//! SNS, SMTP email, or the console. A notice that cannot be delivered is logged; it never changes
//! the run's exit status nor hides the run's own error.

mod smtp;

use std::fmt::Write as _;
use std::str::FromStr;

#[cfg(feature = "aws")]
use crate::aws::describe_sdk_error;
use crate::aws::Aws;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::summary::{RunStatus, Summary};

pub use smtp::SmtpTarget;

/// Where notices go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An SNS topic (`sns:arn:aws:sns:REGION:ACCOUNT:TOPIC`); email subscribers receive it.
    Sns {
        /// The topic ARN.
        topic_arn: String,
    },
    /// Direct email (`smtp://host[:port]?from=..&to=..[&tls=starttls|tls|none]`).
    Smtp(SmtpTarget),
    /// Standard error (`console`): for local runs without email.
    Console,
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(text: &str) -> Result<Target> {
        let text = text.trim();
        if let Some(arn) = text.strip_prefix("sns:") {
            if !arn.starts_with("arn:") || arn.split(':').count() < 6 {
                return Err(Error::Config(format!(
                    "notify target {text:?}: expected sns:arn:aws:sns:REGION:ACCOUNT:TOPIC"
                )));
            }
            return Ok(Target::Sns {
                topic_arn: arn.to_string(),
            });
        }
        if text.starts_with("smtp://") || text.starts_with("smtps://") {
            return SmtpTarget::parse(text).map(Target::Smtp);
        }
        if text == "console" {
            return Ok(Target::Console);
        }
        // The value may hold a password (a mistyped URL): shown the one redacted way.
        Err(Error::Config(format!(
            "notify target {:?} is not one of sns:ARN, smtp://..., console",
            Secret::new(text).redacted()
        )))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sns { topic_arn } => write!(f, "sns:{topic_arn}"),
            Target::Smtp(smtp) => write!(f, "{smtp}"),
            Target::Console => write!(f, "console"),
        }
    }
}

/// Parses every `--notify` value; a value may hold several targets separated by commas or
/// whitespace (handy in one environment variable).
pub fn parse_targets(values: &[Secret]) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for value in values {
        // SMTP URLs use commas inside `to=`; split only between targets.
        for part in split_targets(value.expose()) {
            let target: Target = part.parse()?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    Ok(targets)
}

/// Splits before each `sns:arn:`, `smtp://`, `smtps://` or a whole word `console` that follows a
/// comma or whitespace. `console` must stand alone (`to=ops@x.io,console-team@x.io` is one SMTP
/// target), and an `sns:` target is always an ARN.
fn split_targets(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = value.as_bytes();
    let starts_target = |rest: &str| {
        ["sns:arn:", "smtp://", "smtps://"]
            .iter()
            .any(|s| rest.starts_with(s))
            || rest.strip_prefix("console").is_some_and(|after| {
                after.is_empty() || after.starts_with(|c: char| c == ',' || c.is_whitespace())
            })
    };
    for i in 1..value.len() {
        if (bytes[i - 1] == b',' || bytes[i - 1].is_ascii_whitespace())
            && value.is_char_boundary(i)
            && starts_target(&value[i..])
        {
            parts.push(value[start..i - 1].trim_matches([',', ' ', '\t', '\n']));
            start = i;
        }
    }
    parts.push(value[start..].trim_matches([',', ' ', '\t', '\n']));
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// One message: subject and plain-text body.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// E.g. `First_Surname_Pipeline_Success`.
    pub subject: String,
    /// A readable summary of the run.
    pub body: String,
    /// Whether it reports a success.
    pub success: bool,
}

impl Notice {
    /// The notice for a finished (succeeded, failed or skipped) run.
    pub fn from_summary(name: &str, summary: &Summary) -> Notice {
        let success = summary.status != RunStatus::Failed;
        let mut body = String::new();
        let outcome = match summary.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED: nothing was loaded, the table is as it was",
            RunStatus::AlreadyLoaded => "had nothing to do: this batch was already loaded",
        };
        let run = summary
            .run_id
            .map(|id| format!("run {id}"))
            .unwrap_or_else(|| "the run".into());
        let _ = writeln!(body, "stockload {run} {outcome}.\n");
        let _ = write!(body, "{summary}");
        if let Some(error) = &summary.error {
            let _ = writeln!(body, "\nWhat went wrong: {error}");
        }
        Notice {
            subject: subject(name, success),
            body,
            success,
        }
    }

    /// Names where the run's report is (a file or an s3:// key) at the end of the body.
    pub fn add_report(&mut self, location: &str) {
        let _ = writeln!(self.body, "\nReport: {location}");
        if location.starts_with("s3://") {
            let _ = writeln!(
                self.body,
                "(to open it: aws s3 cp {location} . and open the file in a browser)"
            );
        }
    }

    /// Says at the end of the body that the run's report could not be written, and why.
    pub fn add_report_failure(&mut self, reason: &str) {
        let _ = writeln!(
            self.body,
            "\nThe run's report could not be written: {reason}"
        );
    }

    /// The notice for a run that could not even start (bad configuration, ...).
    pub fn from_error(name: &str, what: &str, error: &Error) -> Notice {
        Notice {
            subject: subject(name, false),
            body: format!(
                "stockload could not start the run ({what}).\n\nWhat went wrong: {error}\n\n\
                 Nothing was loaded; the database is as it was.\n"
            ),
            success: false,
        }
    }

    /// The failure notice of an earlier run found dead (its session gone) and closed as
    /// abandoned by a later run.
    pub fn abandoned(name: &str, run: &crate::ledger::Abandoned) -> Notice {
        Notice {
            subject: subject(name, false),
            body: format!(
                "stockload found an earlier run dead.\n\nWhat went wrong: {run}.\n\n\
                 Nothing it staged was committed: the database is as it was before it. It is now \
                 recorded as abandoned in load_runs.\n"
            ),
            success: false,
        }
    }

    /// The notice `stockload notify-test` sends.
    pub fn test(name: &str) -> Notice {
        Notice {
            subject: format!("{}_Pipeline_Test", prefix(name)),
            body: "This is a test notice from stockload: this target receives run notices.\n"
                .into(),
            success: true,
        }
    }
}

fn prefix(name: &str) -> &str {
    let name = name.trim();
    if name.is_empty() {
        crate::plan::DEFAULT_NOTIFY_NAME
    } else {
        name
    }
}

/// `NAME_Pipeline_Success` or `NAME_Pipeline_Failure`.
pub fn subject(name: &str, success: bool) -> String {
    let outcome = if success { "Success" } else { "Failure" };
    format!("{}_Pipeline_{outcome}", prefix(name))
}

/// Delivers `notice` to every target once. Returns the failures (already logged).
pub async fn send_all(targets: &[Target], notice: &Notice, aws: Option<&Aws>) -> Vec<Error> {
    let mut failures = Vec::new();
    for target in targets {
        match send(target, notice, aws).await {
            Ok(()) => tracing::info!(%target, subject = %notice.subject, "notice sent"),
            Err(err) => {
                tracing::error!("{err}");
                failures.push(err);
            }
        }
    }
    failures
}

async fn send(target: &Target, notice: &Notice, aws: Option<&Aws>) -> Result<()> {
    match target {
        #[cfg(not(feature = "aws"))]
        Target::Sns { .. } => {
            let _ = aws;
            Err(crate::aws::without_aws(&target.to_string()))
        }
        #[cfg(feature = "aws")]
        Target::Sns { topic_arn } => {
            let aws = aws.ok_or_else(|| Error::Notify {
                target: target.to_string(),
                reason: "no AWS configuration was loaded".into(),
                source: None,
            })?;
            aws.sns()
                .publish()
                .topic_arn(topic_arn)
                .subject(&notice.subject)
                .message(&notice.body)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| Error::Notify {
                    target: target.to_string(),
                    reason: describe_sdk_error(&err),
                    source: Some(Box::new(err)),
                })
        }
        Target::Smtp(smtp) => smtp.send(notice).await,
        Target::Console => {
            if crate::log_format() == crate::LogFormat::Json {
                // One JSON line like every other log line, for log pipelines.
                tracing::warn!(subject = %notice.subject, body = %notice.body, "notice");
            } else {
                eprintln!("== {}\n{}", notice.subject, notice.body);
            }
            Ok(())
        }
    }
}

/// True when any target needs AWS clients.
pub fn needs_aws(targets: &[Target]) -> bool {
    targets.iter().any(|t| matches!(t, Target::Sns { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_from_flags_and_one_variable() {
        let targets = parse_targets(&[
            "sns:arn:aws:sns:us-east-1:123456789012:stock-news, smtp://mail.example.com:2525?from=a@x.io&to=b@x.io,c@x.io console".into(),
        ])
        .unwrap();
        assert_eq!(targets.len(), 3, "{targets:?}");
        assert_eq!(
            targets[0],
            Target::Sns {
                topic_arn: "arn:aws:sns:us-east-1:123456789012:stock-news".into()
            }
        );
        match &targets[1] {
            Target::Smtp(smtp) => assert_eq!(smtp.to.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(targets[2], Target::Console);
        assert!(parse_targets(&["sns:topic".into()]).is_err());
        // A recipient that starts with "console" stays a recipient.
        let targets =
            parse_targets(&["smtp://m:25?from=a@x.io&to=ops@x.io,console-team@x.io".into()])
                .unwrap();
        match &targets[..] {
            [Target::Smtp(smtp)] => assert_eq!(smtp.to, ["ops@x.io", "console-team@x.io"]),
            other => panic!("{other:?}"),
        }
        let err = parse_targets(&["ftp://u:pw123@h".into()])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw123"), "{err}");
    }

    #[test]
    fn a_notice_names_the_report_or_why_there_is_none() {
        let mut notice = Notice::test("x");
        notice.add_report("s3://b/Output/reports/run-4.html");
        assert!(notice.body.ends_with(
            "\nReport: s3://b/Output/reports/run-4.html\n\
             (to open it: aws s3 cp s3://b/Output/reports/run-4.html . and open the file in a browser)\n"
        ), "{}", notice.body);
        let mut notice = Notice::test("x");
        notice.add_report("/srv/reports/run-4.html");
        assert!(
            notice.body.ends_with("\nReport: /srv/reports/run-4.html\n"),
            "{}",
            notice.body
        );
        notice.add_report_failure("cannot write /srv: permission denied");
        assert!(notice
            .body
            .contains("The run's report could not be written: cannot write /srv"));
    }

    #[test]
    fn subjects_follow_the_pipeline_convention() {
        assert_eq!(
            subject("Ada_Lovelace", true),
            "Ada_Lovelace_Pipeline_Success"
        );
        assert_eq!(
            subject("Ada_Lovelace", false),
            "Ada_Lovelace_Pipeline_Failure"
        );
        assert_eq!(subject(" ", false), "stockload_Pipeline_Failure");
    }

    #[test]
    fn a_notice_says_what_the_quality_checks_found() {
        let plan = crate::plan::Plan::new(
            crate::storage::Location::Local("Stocks".into()),
            crate::storage::Location::Local("top_companies.txt".into()),
        );
        let mut summary = Summary::new(&plan);
        summary.status = RunStatus::Succeeded;
        summary.run_id = Some(7);
        summary.quality = vec![crate::summary::QualityCount {
            check_name: "suspected_split".into(),
            severity: "warning".into(),
            flags: 2,
            cleared: 0,
        }];
        let notice = Notice::from_summary("stockload", &summary);
        assert!(
            notice
                .body
                .contains("quality:   0 errors, 2 warnings (suspected_split 2)"),
            "{}",
            notice.body
        );
        assert!(notice.body.contains("stockload quality --run 7"));
    }
}
