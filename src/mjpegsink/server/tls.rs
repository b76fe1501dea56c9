// SPDX-License-Identifier: MPL-2.0

//! HTTPS: the rustls configuration from PEM files ([`load`]) and the
//! acceptor in front of hyper ([`accept`]), which answers plain HTTP sent
//! to the HTTPS port with a `400` saying so (as nginx does) instead of
//! leaving the client hanging.
//!
//! ALPN offers [`ALPN`]: `h2` first (served by `conn` with hyper's HTTP/2
//! builder, see `h2`), then `http/1.1`; a client that offers no ALPN gets
//! HTTP/1.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::net::NoSigPipe;

/// Protocols offered by ALPN, most preferred first.
pub(crate) const ALPN: &[&[u8]] = &[H2, b"http/1.1"];
/// ALPN's name of HTTP/2 (served by `h2`).
pub(crate) const H2: &[u8] = b"h2";

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Most request bytes read (and dropped) from a plain-HTTP client before it
/// is answered, so that closing does not reset the connection under the
/// answer.
const PLAIN_DRAIN: usize = 16 * 1024;
/// Longest wait for those bytes.
const PLAIN_DRAIN_WAIT: Duration = Duration::from_millis(200);

const PLAIN_HTTP_ANSWER: &str = "This server speaks HTTPS only: use an https:// URL.\n";

/// Why the TLS files cannot be used.
#[derive(Debug)]
pub enum TlsError {
    /// A file cannot be read.
    Read { path: PathBuf, error: io::Error },
    /// A file holds no usable certificate or key, or they do not match.
    Invalid { path: PathBuf, reason: String },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            TlsError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for TlsError {}

/// The server configuration from a PEM certificate chain and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1).
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_path_buf(),
            error,
        })
    };
    let invalid = |path: &Path, reason: String| TlsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert, format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "no CERTIFICATE in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(key, format!("no PEM private key in the file: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(key, format!("certificate and key unusable: {e}")))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The TLS stream of an accepted connection once its handshake is done. A
/// client that spoke plain HTTP is answered with a `400` and reported as an
/// `InvalidData` error; one that closed first as `UnexpectedEof`.
pub(crate) async fn accept(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<TlsStream<NoSigPipe>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before the TLS handshake",
        ));
    }
    if first[0] != TLS_HANDSHAKE {
        answer_plain_http(stream).await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            PlainHttp.to_string(),
        ));
    }
    TlsAcceptor::from(config).accept(NoSigPipe(stream)).await
}

/// What [`accept`] reports when a client spoke plain HTTP.
#[derive(Debug)]
pub(crate) struct PlainHttp;

impl fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("plain HTTP on the HTTPS port: answered 400")
    }
}

/// nginx's answer to plain HTTP on an HTTPS port: a `400` that says so.
async fn answer_plain_http(mut stream: TcpStream) {
    let mut buf = vec![0u8; PLAIN_DRAIN];
    let mut got = 0;
    let _ = tokio::time::timeout(PLAIN_DRAIN_WAIT, async {
        while got < buf.len() {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_ANSWER}",
        PLAIN_HTTP_ANSWER.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read what else comes until the client closes (bounded), so the close
    // is not a reset that could discard the answer.
    let _ = tokio::time::timeout(PLAIN_DRAIN_WAIT, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
