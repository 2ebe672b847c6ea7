//! Logs on stderr: text for people (colours only at a terminal), JSON lines for log pipelines
//! (`--log-format json`, `STOCKLOAD_LOG_FORMAT`, the Lambda's default).

use std::io::IsTerminal;

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal and NO_COLOR is not set.
    Text,
    /// One JSON object per line (CloudWatch, log pipelines); the Lambda's default.
    Json,
}

impl LogFormat {
    /// The environment variable that chooses the format (`text` or `json`).
    pub const VAR: &'static str = "STOCKLOAD_LOG_FORMAT";

    /// The format `STOCKLOAD_LOG_FORMAT` names, else `default`.
    pub fn from_env(default: LogFormat) -> LogFormat {
        match std::env::var(LogFormat::VAR).as_deref().map(str::trim) {
            Ok(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
            Ok(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => default,
        }
    }
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The format logging was started with (text until [`init_tracing`] is called).
pub fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// Colour codes only for a person at a terminal: never into files, pipes or CloudWatch, and
/// never when NO_COLOR is set to anything but the empty string (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Logs go to stderr, as `format` says; `RUST_LOG` overrides the default level (info for
/// stockload, warn otherwise).
pub fn init_tracing(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,stockload=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init(),
    };
}
