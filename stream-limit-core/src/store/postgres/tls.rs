//! TLS to Postgres, with libpq's meanings of `sslmode` and `sslrootcert`.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` and `require` only, and
//! leaves certificate checks to the TLS connector. So the two parameters are
//! taken out of the URL here, and the connector (rustls, through
//! `tokio-postgres-rustls`) checks what the mode asks for:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless a CA is given (then as `verify-ca`) |
//! | `verify-ca` | always | signed by the CA |
//! | `verify-full` | always | signed by the CA, and names the host |
//!
//! The CA is `sslrootcert` (a PEM file, or `system` for the operating
//! system's roots), or [`super::PostgresConfig::tls_ca_file`]. With a CA and
//! no `sslmode`, the mode is `verify-full`: a configured CA is never ignored.
//! `sslrootcert=system` allows `verify-full` only (as libpq 16 does): any
//! public CA signs certificates for someone, so a weaker check would let any
//! of them pass for the database. A problem with
//! either is a [`PostgresError::Tls`] at [`super::PostgresStore::connect`],
//! before any connection: never a panic, and never plaintext in a mode that
//! requires TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PostgresError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// TLS always, without checking the certificate (unless a CA is given).
    Require,
    /// TLS, with a certificate signed by the CA.
    VerifyCa,
    /// TLS, with a certificate signed by the CA that names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PostgresError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(PostgresError::Tls(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is attempted, and required.
    fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            Self::Disable => Driver::Disable,
            Self::Prefer => Driver::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Driver::Require,
        }
    }
}

/// Where trusted certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    File(PathBuf),
    System,
}

/// A URL with its TLS parameters taken out: what tokio-postgres parses, and
/// what the connector needs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub(super) url: String,
    /// `None` when the URL names no `sslmode`.
    mode: Option<SslMode>,
    roots: Option<Roots>,
}

/// Takes `sslmode` and `sslrootcert` out of a libpq URL
/// (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem`) or key/value
/// string (`host=db sslmode=require`).
pub(super) fn split(url: &str) -> Result<Split, PostgresError> {
    let mut mode = None;
    let mut roots = None;
    let mut take = |key: &str, value: &str| -> Result<bool, PostgresError> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" if value == "system" => roots = Some(Roots::System),
            "sslrootcert" => roots = Some(Roots::File(PathBuf::from(value))),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let decode = |text: &str| {
                        percent_encoding::percent_decode_str(text)
                            .decode_utf8()
                            .map(|t| t.into_owned())
                            .map_err(|_| PostgresError::Tls(format!("{key} is not UTF-8")))
                    };
                    if !take(&decode(key)?, &decode(value)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        // Cut out exactly the settings taken; everything else stays as written.
        let mut kept = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(setting) = next_setting(rest)? {
            if !take(setting.key, &setting.value)? {
                kept.push_str(&rest[..setting.end]);
            }
            rest = &rest[setting.end..];
        }
        kept.push_str(rest);
        kept
    };
    Ok(Split {
        url: rest,
        mode,
        roots,
    })
}

/// One `key = value` of a libpq key/value string, as libpq reads it: spaces
/// around `=`, and a value either bare or in single quotes with `\'` and `\\`.
struct Setting<'a> {
    key: &'a str,
    value: String,
    /// Where the setting ends in the text it was read from.
    end: usize,
}

fn next_setting(text: &str) -> Result<Option<Setting<'_>>, PostgresError> {
    let start = text.len() - text.trim_start().len();
    if start == text.len() {
        return Ok(None);
    }
    let bad = || {
        PostgresError::Tls(format!(
            "cannot read the connection settings near `{}`",
            &text[start..]
        ))
    };
    let key_end = text[start..]
        .find(|c: char| c == '=' || c.is_whitespace())
        .map_or(text.len(), |i| start + i);
    let key = &text[start..key_end];
    let after_key = &text[key_end..];
    let equals = after_key.len() - after_key.trim_start().len();
    if !after_key[equals..].starts_with('=') {
        return Err(bad());
    }
    let value_text = &after_key[equals + 1..];
    let value_start = key_end + equals + 1 + (value_text.len() - value_text.trim_start().len());
    let mut value = String::new();
    let mut chars = text[value_start..].char_indices();
    let quoted = text[value_start..].starts_with('\'');
    if quoted {
        chars.next();
    }
    let mut end = text.len();
    let mut closed = !quoted;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next().ok_or_else(bad)?.1),
            '\'' if quoted => {
                end = value_start + i + 1;
                closed = true;
                break;
            }
            c if !quoted && c.is_whitespace() => {
                end = value_start + i;
                break;
            }
            c => value.push(c),
        }
    }
    if !closed {
        return Err(bad());
    }
    Ok(Some(Setting { key, value, end }))
}

impl Split {
    /// Sets the driver's TLS mode on `pg` and builds the connector, with the
    /// CA from the URL, else `ca_file`.
    pub(super) fn connector(
        &self,
        pg: &mut tokio_postgres::Config,
        ca_file: Option<&Path>,
    ) -> Result<MakeRustlsConnect, PostgresError> {
        let roots = self
            .roots
            .clone()
            .or_else(|| ca_file.map(|f| Roots::File(f.to_path_buf())));
        let mode = match (self.mode, &roots) {
            (None, None) => SslMode::default(),
            (None, Some(_)) | (Some(SslMode::VerifyFull), Some(Roots::System)) => {
                SslMode::VerifyFull
            }
            (Some(mode), Some(Roots::System)) => {
                return Err(PostgresError::Tls(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}: any public CA \
                     could otherwise vouch for the database",
                    mode.as_str()
                )))
            }
            (Some(mode), _) => mode,
        };
        pg.ssl_mode(mode.driver_mode());
        let provider = Arc::new(crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(PostgresError::Tls(format!(
                    "sslmode={} needs a CA: set sslrootcert in the URL (a PEM file, or `system`) \
                     or store.tls_ca_file",
                    mode.as_str()
                )))
            }
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
                Arc::new(Unchecked(Arc::clone(&provider)))
            }
            (mode, Some(roots)) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(load(&roots)?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| PostgresError::Tls(format!("the CA cannot verify: {e}")))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The trusted certificates, read now so a bad file fails startup.
fn load(roots: &Roots) -> Result<RootCertStore, PostgresError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let named = |e: &dyn std::fmt::Display| {
                PostgresError::Tls(format!("CA file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| named(&e))? {
                store
                    .add(cert.map_err(|e| named(&e))?)
                    .map_err(|e| named(&e))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // One unusable system certificate is no reason to refuse the rest.
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err(PostgresError::Tls(format!(
            "no CA certificate found in {}",
            match roots {
                Roots::File(path) => path.display().to_string(),
                Roots::System => "the system's certificate store".to_owned(),
            }
        )));
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA, as in libpq: encrypted, but any
/// certificate is accepted (the handshake's signatures are still checked).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_tls_parameters_out_of_a_url() {
        let split = split(
            "postgres://u@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("valid");
        assert_eq!(split.url, "postgres://u@db:5432/app?application_name=x");
        assert_eq!(split.mode, Some(SslMode::VerifyFull));
        assert_eq!(split.roots, Some(Roots::File("/etc/ca.pem".into())));
    }

    #[test]
    fn takes_the_tls_parameters_out_of_key_value_settings() {
        let split = split("host=db sslmode=require sslrootcert=system user=u").expect("valid");
        assert_eq!(split.url, "host=db user=u");
        assert_eq!(split.mode, Some(SslMode::Require));
        assert_eq!(split.roots, Some(Roots::System));
    }

    #[test]
    fn reads_key_value_settings_as_libpq_does() {
        let split =
            split("host=db  sslmode = 'verify-full' password='a  b\\'c' sslrootcert=/ca.pem")
                .expect("valid");
        assert_eq!(split.url, "host=db password='a  b\\'c'");
        assert_eq!(split.mode, Some(SslMode::VerifyFull));
        assert_eq!(split.roots, Some(Roots::File("/ca.pem".into())));
        assert!(super::split("host=db sslmode").is_err());
        assert!(super::split("host=db password='open").is_err());
    }

    #[test]
    fn percent_encoded_keys_are_read_as_tokio_postgres_reads_them() {
        let split = split("postgres://db/app?ssl%6Dode=require").expect("valid");
        assert_eq!(
            (split.url.as_str(), split.mode),
            ("postgres://db/app", Some(SslMode::Require))
        );
    }

    #[test]
    fn prefer_is_the_default_and_unknown_modes_are_refused() {
        let split = split("postgres://db/app").expect("valid");
        assert_eq!(
            (split.url.as_str(), split.mode),
            ("postgres://db/app", None)
        );
        let mut pg = tokio_postgres::Config::new();
        assert!(split.connector(&mut pg, None).is_ok());
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        let error = super::split("postgres://db/app?sslmode=allow").expect_err("not supported");
        assert!(error.to_string().contains("sslmode=allow"), "{error}");
    }

    #[test]
    fn verifying_modes_need_a_ca_and_a_missing_file_is_named() {
        let refusal = |url: &str| {
            let mut pg = tokio_postgres::Config::new();
            match split(url).expect("valid").connector(&mut pg, None) {
                Ok(_) => panic!("{url}: accepted"),
                Err(error) => error.to_string(),
            }
        };
        let error = refusal("postgres://db/app?sslmode=verify-full");
        assert!(error.contains("needs a CA"), "{error}");
        let error = refusal("postgres://db/app?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        // A CA without a mode is verify-full, so the file is read (and missing).
        let error = refusal("postgres://db/app?sslrootcert=/nonexistent/ca.pem");
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        // The system's roots allow verify-full only.
        for mode in ["require", "verify-ca", "prefer", "disable"] {
            let error = refusal(&format!(
                "postgres://db/app?sslmode={mode}&sslrootcert=system"
            ));
            assert!(
                error.contains("needs sslmode=verify-full"),
                "{mode}: {error}"
            );
        }
    }
}
