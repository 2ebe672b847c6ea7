//! External services for tests (moto_server, SMTP) — filled in by later issues.
