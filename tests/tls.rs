//! TLS the way libpq does it, against throwaway PostgreSQL clusters with `ssl=on` and
//! certificates made in the test: `prefer` (the default) and `require` encrypt with any
//! certificate (X.509 v1 and v3), `verify-ca`/`verify-full` verify, and refusals say why.

use std::time::Duration;

use stockload::db::Db;
use stockload::devdb::TempCluster;

use crate::support::{self, csv, tls_cluster, Batch, Pki};

const ENCRYPTED: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// Connects as stockload does and reports whether the session is encrypted (the server's view).
async fn encrypted(url: &str) -> Result<bool, String> {
    let db = Db::new(Some(url), "64MB", Duration::from_secs(20)).map_err(|e| e.to_string())?;
    let mut conn = db.connect().await.map_err(|e| e.to_string())?;
    sqlx::query_scalar::<_, bool>(ENCRYPTED)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

fn with_params(cluster: &TempCluster, host: &str, params: &str) -> String {
    let url = cluster.url("postgres").replace("127.0.0.1", host);
    if params.is_empty() {
        url
    } else {
        format!("{url}?{params}")
    }
}

async fn refused(url: &str, cluster: &TempCluster) -> String {
    let err = encrypted(url)
        .await
        .expect_err("the connection should have been refused");
    eprintln!("refused as it should be: {err}");
    assert!(
        !err.contains(cluster.password()),
        "the password is in the error: {err}"
    );
    err
}

#[tokio::test]
async fn self_signed_v1_certificate_is_encrypted_without_verifying_like_psql() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki.self_signed_v1("v1"));
    for params in ["", "sslmode=prefer", "sslmode=require"] {
        let url = with_params(&cluster, "127.0.0.1", params);
        assert_eq!(encrypted(&url).await, Ok(true), "with {params:?}");
    }
    // sslmode=disable really is plain, so the check above can tell the difference.
    let url = with_params(&cluster, "127.0.0.1", "sslmode=disable");
    assert_eq!(encrypted(&url).await, Ok(false));
}

#[tokio::test]
async fn a_whole_load_runs_through_tls_with_a_v1_certificate() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki.self_signed_v1("v1"));
    cluster.create_database("tls_load").await.unwrap();
    let url = cluster.url("tls_load") + "?sslmode=require";
    let rows: Vec<(String, String, String)> = (1..=28)
        .map(|day| (format!("2024-02-{day:02}"), "10.5".into(), "11.25".into()))
        .collect();
    let rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(d, o, c)| (d.as_str(), o.as_str(), c.as_str()))
        .collect();
    let batch = Batch::new(&[("AAPL.csv", &csv(&rows))], "AAPL.csv");
    let output = support::stockload()
        .args(["load", "--json", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let db = Db::new(Some(&url), "64MB", Duration::from_secs(20)).unwrap();
    let mut conn = db.connect().await.unwrap();
    let loaded: i64 = sqlx::query_scalar("SELECT count(*) FROM historical_stocks_data")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(loaded, 28);
    assert!(sqlx::query_scalar::<_, bool>(ENCRYPTED)
        .fetch_one(&mut conn)
        .await
        .unwrap());
}

#[tokio::test]
async fn self_signed_v3_certificate_is_encrypted_without_verifying() {
    let pki = Pki::new();
    let cert = pki.self_signed_v3("v3");
    let cluster = tls_cluster(&cert);
    for params in ["", "sslmode=require"] {
        let url = with_params(&cluster, "127.0.0.1", params);
        assert_eq!(encrypted(&url).await, Ok(true), "with {params:?}");
    }
}

#[tokio::test]
async fn verify_ca_and_verify_full_check_the_authority_and_the_host_name() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let other_ca = pki.ca("other_ca");
    // Valid for "localhost" only: 127.0.0.1 is the wrong host name for it.
    let server = pki.signed(&ca, "server", "DNS:localhost");
    let cluster = tls_cluster(&server);
    let root = |ca: &support::CertFiles| format!("sslrootcert={}", ca.cert.display());

    for (host, mode) in [
        ("localhost", "verify-full"),
        ("localhost", "verify-ca"),
        ("127.0.0.1", "verify-ca"),
    ] {
        let url = with_params(&cluster, host, &format!("sslmode={mode}&{}", root(&ca)));
        assert_eq!(encrypted(&url).await, Ok(true), "{mode} to {host}");
    }

    let wrong_host = with_params(
        &cluster,
        "127.0.0.1",
        &format!("sslmode=verify-full&{}", root(&ca)),
    );
    let err = refused(&wrong_host, &cluster).await;
    assert!(
        err.contains("not valid for the host name 127.0.0.1"),
        "{err}"
    );

    for mode in ["verify-ca", "verify-full"] {
        let wrong_ca = with_params(
            &cluster,
            "localhost",
            &format!("sslmode={mode}&{}", root(&other_ca)),
        );
        let err = refused(&wrong_ca, &cluster).await;
        assert!(
            err.contains("not signed by a certificate authority in sslrootcert"),
            "{err}"
        );
    }

    // The same through the binary and libpq's variables (PGSSLMODE, PGSSLROOTCERT), no URL.
    for (ca, ok) in [(&ca, true), (&other_ca, false)] {
        let output = support::stockload()
            .arg("migrate")
            .env_remove("DATABASE_URL")
            .env("PGHOST", "localhost")
            .env("PGPORT", cluster.port().to_string())
            .env("PGUSER", stockload::devdb::SUPERUSER)
            .env("PGPASSWORD", cluster.password())
            .env("PGDATABASE", "postgres")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca.cert)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.success(), ok, "{all}");
        assert!(!all.contains(cluster.password()), "{all}");
        if !ok {
            assert!(
                all.contains("not signed by a certificate authority"),
                "{all}"
            );
        }
    }

    let no_root = with_params(&cluster, "localhost", "sslmode=verify-full");
    let err = refused(&no_root, &cluster).await;
    // Says where to put the CA (or, where ~/.postgresql/root.crt exists, that it is the wrong one).
    assert!(
        err.contains("give sslrootcert=") || err.contains("root.crt"),
        "{err}"
    );
}

#[tokio::test]
async fn without_tls_on_the_server_prefer_falls_back_and_require_says_why() {
    let db = support::TestDb::new().await;
    assert_eq!(encrypted(&db.url).await, Ok(false));
    assert_eq!(
        encrypted(&format!("{}?sslmode=prefer", db.url)).await,
        Ok(false)
    );
    let err = encrypted(&format!("{}?sslmode=require", db.url))
        .await
        .unwrap_err();
    assert!(err.contains("does not accept TLS connections"), "{err}");
    assert!(!err.contains(&db.password), "{err}");
}

#[tokio::test]
async fn tls_1_2_handshakes_are_checked_with_the_certificates_key_too() {
    let pki = Pki::new();
    for cert in [pki.self_signed_v1("v1"), pki.self_signed_v3("v3")] {
        let cluster = TempCluster::start_tls(
            &[("ssl_max_protocol_version", "'TLSv1.2'")],
            &cert.cert,
            &cert.key,
        )
        .unwrap();
        let url = with_params(&cluster, "127.0.0.1", "sslmode=require");
        let db = Db::new(Some(&url), "64MB", Duration::from_secs(20)).unwrap();
        let mut conn = db.connect().await.unwrap();
        let version: String =
            sqlx::query_scalar("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(version, "TLSv1.2", "{}", cert.cert.display());
    }
}
