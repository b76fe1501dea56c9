// SPDX-License-Identifier: MPL-2.0

//! TLS for the client: the root store (built-in roots plus the system's)
//! and the `ssl-strict=false` verifier that accepts any certificate.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Read `ssl-ca-file`: PEM certificates (CAs or self-signed servers) to
/// trust. A file that cannot be read, holds no certificate, or holds one
/// that is not usable as a trust anchor is an error.
pub(crate) fn load_ca_file(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("Cannot read ssl-ca-file {path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Invalid PEM in ssl-ca-file {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("No certificate in ssl-ca-file {path}"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("Unusable certificate #{} in ssl-ca-file {path}: {e}", i + 1))?;
    }
    Ok(certs)
}

/// The client configuration for `ssl-strict` on or off; `extra_roots`
/// (`ssl-ca-file`) are trusted besides the built-in and system roots.
pub(crate) fn tls_config(
    strict: bool,
    extra_roots: &[CertificateDer<'static>],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let config = if strict {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // The system store adds local and corporate CAs; a missing or
        // unreadable store leaves the built-in roots.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        // Checked when loaded (`load_ca_file`): these are all usable.
        let _ = roots.add_parsable_certificates(extra_roots.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    };
    Arc::new(config)
}

/// `ssl-strict=false`: accept any certificate (self-signed cameras), while
/// still checking that the handshake signatures are valid.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
