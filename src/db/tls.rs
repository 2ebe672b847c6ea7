//! TLS the way libpq does it. `prefer` (the default) and `require` encrypt without verifying the
//! server's certificate — any certificate, X.509 v1 included — but the handshake must still be
//! signed by that certificate's key; `verify-ca` checks the chain against `sslrootcert`, and
//! `verify-full` the host name as well.
//!
//! sqlx cannot do the first: its rustls path, even when asked not to verify, hands the
//! certificate to webpki to check the handshake signature, and webpki parses X.509 v3 only, so a
//! v1 certificate (what `openssl x509 -req` without extensions makes, and some distributions
//! generate) fails with `invalid peer certificate: UnsupportedCertVersion`. sqlx takes no rustls
//! configuration either. So the TLS is done here: open the TCP connection, ask for TLS
//! (SSLRequest), shake hands with our own rustls configuration, and let sqlx speak the protocol
//! through a Unix socket in a private (0700) temporary folder that relays to the TLS stream. The
//! socket file is removed as soon as sqlx is connected.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::ConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};

use crate::error::describe_sqlx;

/// The certificate settings of a connection (`sslrootcert`, `sslcert`, `sslkey` from the URL or
/// PGSSLROOTCERT, PGSSLCERT, PGSSLKEY): a file path, inline PEM, or `system` for the root.
#[derive(Clone, Default)]
pub(super) struct TlsFiles {
    root_cert: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
}

impl TlsFiles {
    /// Reads them from the options (sqlx has no getter; its URL form carries them).
    pub(super) fn from_options(options: &PgConnectOptions) -> TlsFiles {
        let url = options.to_url_lossy();
        let get = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| match value.strip_prefix("file: ") {
                    Some(path) => path.to_string(),
                    None => value.into_owned(),
                })
        };
        TlsFiles {
            root_cert: get("sslrootcert"),
            client_cert: get("sslcert"),
            client_key: get("sslkey"),
        }
    }

    /// How the root certificate is named in messages (never the PEM text itself).
    fn root_name(&self) -> String {
        match self.root_cert.as_deref() {
            Some("system") => "the system's trusted roots (sslrootcert=system)".into(),
            Some(pem) if is_pem(pem) => "the inline sslrootcert".into(),
            Some(path) => format!("sslrootcert {path}"),
            None => default_root_cert()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.postgresql/root.crt".into()),
        }
    }
}

/// Opens one connection, with TLS as the sslmode asks. The error is the reason, for
/// [`crate::error::Error::Connect`]; it never holds the password.
pub(super) async fn connect(
    options: &PgConnectOptions,
    files: &TlsFiles,
) -> Result<PgConnection, String> {
    let mode = options.get_ssl_mode();
    let host = options.get_host();
    let port = options.get_port();
    // libpq uses no TLS over Unix sockets either.
    let over_socket = options.get_socket().is_some() || host.starts_with('/');
    if over_socket || matches!(mode, PgSslMode::Disable | PgSslMode::Allow) {
        return plain(options).await;
    }
    let config = client_config(mode, files)?;
    let mut tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    if !request_tls(&mut tcp).await? {
        drop(tcp);
        return match mode {
            PgSslMode::Prefer => plain(&options.clone().ssl_mode(PgSslMode::Disable)).await,
            _ => Err(format!(
                "the server does not accept TLS connections, and sslmode={} requires TLS",
                mode_name(mode)
            )),
        };
    }
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is not a host name TLS can use"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = match connector.connect(server_name, tcp).await {
        Ok(stream) => stream,
        Err(err) if matches!(mode, PgSslMode::Prefer) => {
            // libpq does the same: prefer means "TLS if it works".
            tracing::warn!(
                "TLS handshake with {host}:{port} failed ({}); connecting without TLS, as \
                 sslmode=prefer allows",
                describe_handshake(&err, mode, files, host)
            );
            return plain(&options.clone().ssl_mode(PgSslMode::Disable)).await;
        }
        Err(err) => return Err(describe_handshake(&err, mode, files, host)),
    };
    relay(options, stream).await
}

async fn plain(options: &PgConnectOptions) -> Result<PgConnection, String> {
    options.connect().await.map_err(|e| describe_sqlx(&e))
}

/// The SSLRequest message: length 8, then the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Asks the server for TLS: `true` when it answers `S`, `false` for `N`.
async fn request_tls(tcp: &mut TcpStream) -> Result<bool, String> {
    let failed = |e: std::io::Error| format!("asking the server for TLS: {e}");
    tcp.write_all(&SSL_REQUEST).await.map_err(failed)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(failed)?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' => Ok(false),
        other => Err(format!(
            "unexpected answer 0x{other:02x} to the TLS request: is this a PostgreSQL server?"
        )),
    }
}

/// Lets sqlx connect through a private Unix socket that relays to the TLS stream.
async fn relay(
    options: &PgConnectOptions,
    mut stream: tokio_rustls::client::TlsStream<TcpStream>,
) -> Result<PgConnection, String> {
    let dir = tempfile::Builder::new()
        .prefix("stockload-tls-")
        .tempdir()
        .map_err(|e| format!("cannot create a folder for the TLS relay: {e}"))?;
    let port = options.get_port();
    let listener = UnixListener::bind(dir.path().join(format!(".s.PGSQL.{port}")))
        .map_err(|e| format!("cannot open the TLS relay socket: {e}"))?;
    let relay = tokio::spawn(async move {
        let Ok((mut local, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        // Ends when either side closes; a closed side closes the other.
        let _ = tokio::io::copy_bidirectional(&mut local, &mut stream).await;
        let _ = stream.shutdown().await;
    });
    let connected = options
        .clone()
        .socket(dir.path())
        .ssl_mode(PgSslMode::Disable)
        .connect()
        .await;
    drop(dir);
    connected.map_err(|e| {
        relay.abort();
        describe_sqlx(&e)
    })
}

fn client_config(mode: PgSslMode, files: &TlsFiles) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
            let roots = root_store(files, mode)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            if matches!(mode, PgSslMode::VerifyFull) {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            }
        }
        _ => Arc::new(EncryptOnly {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => {
            let chain = pem_certificates(cert, "sslcert")?;
            let key_pem = read_pem(key, "sslkey")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| format!("sslkey {key}: no private key in it"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("sslcert and sslkey must be given together".into()),
    }
}

fn root_store(files: &TlsFiles, mode: PgSslMode) -> Result<RootCertStore, String> {
    match files.root_cert.as_deref() {
        Some("system") => Ok(RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        )),
        Some(source) => {
            let mut store = RootCertStore::empty();
            for cert in pem_certificates(source, "sslrootcert")? {
                store
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", files.root_name()))?;
            }
            Ok(store)
        }
        None => match default_root_cert().filter(|p| p.exists()) {
            Some(path) => {
                let mut store = RootCertStore::empty();
                for cert in pem_certificates(&path.display().to_string(), "sslrootcert")? {
                    store
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                Ok(store)
            }
            None => Err(format!(
                "sslmode={} verifies the server's certificate, which needs the certificate of \
                 the authority that signed it: give sslrootcert=/path/to/ca.pem (for Amazon RDS \
                 its CA bundle), sslrootcert=system, or put it in ~/.postgresql/root.crt",
                mode_name(mode)
            )),
        },
    }
}

/// libpq's default root certificate file.
fn default_root_cert() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".postgresql/root.crt"))
}

fn is_pem(text: &str) -> bool {
    text.trim_start().starts_with("-----BEGIN")
}

fn read_pem(source: &str, what: &str) -> Result<Vec<u8>, String> {
    if is_pem(source) {
        return Ok(source.as_bytes().to_vec());
    }
    std::fs::read(source).map_err(|e| format!("{what} {source}: {e}"))
}

fn pem_certificates(source: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let name = if is_pem(source) { "(inline)" } else { source };
    let pem = read_pem(source, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {name}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {name}: no certificate in it"));
    }
    Ok(certs)
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// A handshake failure in words an operator can act on.
fn describe_handshake(
    err: &std::io::Error,
    mode: PgSslMode,
    files: &TlsFiles,
    host: &str,
) -> String {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>());
    let mode = mode_name(mode);
    match tls {
        Some(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)) => format!(
            "the server's certificate is not signed by a certificate authority in {} \
             (sslmode={mode}): is sslrootcert the right CA?",
            files.root_name()
        ),
        Some(TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "the server's certificate is not valid for the host name {host} (sslmode={mode}): \
             connect by a name the certificate lists, or use sslmode=verify-ca"
        ),
        Some(TlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => format!("the server's certificate has expired (sslmode={mode})"),
        Some(TlsError::InvalidCertificate(other)) => {
            format!("the server's certificate was refused (sslmode={mode}): {other:?}")
        }
        Some(other) => format!("TLS handshake failed (sslmode={mode}): {other}"),
        None => format!("TLS handshake failed (sslmode={mode}): {err}"),
    }
}

/// `prefer`/`require`: any certificate is accepted (as libpq does), but the handshake must be
/// signed by its key, checked from the certificate's public key alone (no X.509 version limits).
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let bad = || TlsError::InvalidCertificate(CertificateError::BadSignature);
        let spki = subject_public_key_info(cert).ok_or_else(bad)?;
        let (algorithm_id, key) = spki_parts(spki).ok_or_else(bad)?;
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter());
        for alg in candidates {
            if alg.public_key_alg_id().as_ref() == algorithm_id {
                return alg
                    .verify_signature(key, message, dss.signature())
                    .map(|_| HandshakeSignatureValid::assertion())
                    .map_err(|_| bad());
            }
        }
        Err(bad())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let spki = subject_public_key_info(cert)
            .ok_or(TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is verified, the host name is not (libpq's meaning).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One DER element: (tag, contents, the bytes after it). None when truncated or too long.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The SubjectPublicKeyInfo (whole DER element) of a certificate of any X.509 version.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = der(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der(certificate)? else {
        return None;
    };
    // [0] version: absent in v1 certificates.
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        tbs = der(tbs)?.2;
    }
    let (0x30, _, rest) = der(tbs)? else {
        return None;
    };
    Some(&tbs[..tbs.len() - rest.len()])
}

/// (AlgorithmIdentifier contents, public key bytes) of a SubjectPublicKeyInfo.
fn spki_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, body, _) = der(spki)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der(body)? else {
        return None;
    };
    let (0x03, bits, _) = der(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, key) => Some((algorithm, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_reader_refuses_truncated_input() {
        assert_eq!(
            der(&[0x30, 0x03, 1, 2, 3, 4]),
            Some((0x30, &[1u8, 2, 3][..], &[4u8][..]))
        );
        assert_eq!(der(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(der(&[0x30, 0x82, 0x01]), None);
        assert_eq!(der(&[0x30]), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x02, 0x30, 0x00]), None);
        assert_eq!(spki_parts(&[0x30, 0x00]), None);
    }

    #[test]
    fn certificate_settings_come_from_the_url() {
        let options: PgConnectOptions =
            "postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem"
                .parse()
                .unwrap();
        let files = TlsFiles::from_options(&options);
        assert_eq!(files.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(files.client_cert, None);
        assert_eq!(files.root_name(), "sslrootcert /etc/ca.pem");
    }
}
