//! Shared HTTP plumbing for the HTTP providers: one pooled `reqwest::Client` per provider (rustls on
//! ring, Mozilla's roots), and the classification of HTTP outcomes into send errors.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::{ChannelError, WallClock};

/// A client with connection reuse, the given timeouts, and rustls (ring provider, webpki roots plus
/// any extra PEM roots).
pub(crate) fn build_client(
    provider: &'static str,
    timeout: Duration,
    extra_roots_pem: &[String],
) -> Result<reqwest::Client, ChannelError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots_pem {
        for certificate in parse_pem_certificates(provider, pem)? {
            roots.add(certificate).map_err(|error| {
                ChannelError::config(provider, "extra_root_certificates_pem", error.to_string())
            })?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| ChannelError::config(provider, "tls", error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("Cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ChannelError::config(provider, "http_client", error.to_string()))
}

/// The certificates of a PEM bundle; an error when it holds none.
pub(crate) fn parse_pem_certificates(
    provider: &'static str,
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ChannelError> {
    use rustls::pki_types::pem::PemObject;
    let certificates: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certificates.is_empty() {
        return Err(ChannelError::config(
            provider,
            "extra_root_certificates_pem",
            "no PEM certificate found",
        ));
    }
    Ok(certificates)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, clock: &dyn WallClock) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait_ms = date.timestamp_millis() - clock.now_ms();
    Some(Duration::from_millis(wait_ms.max(0) as u64))
}

/// The class of a non-success HTTP status without provider-specific knowledge: 408, 425, 429 and 5xx
/// are transient, other 4xx permanent.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// A transport failure: nothing sent (connect) is transient; a timeout or broken response after the
/// request went out is in doubt.
pub(crate) fn classify_transport_error(error: &reqwest::Error) -> ChannelError {
    if error.is_connect() {
        return ChannelError::transient(format!("cannot connect: {error}"));
    }
    if error.is_builder() || error.is_request() && !error.is_timeout() && error.url().is_none() {
        return ChannelError::permanent("invalid_request", error.to_string());
    }
    if error.is_timeout() {
        return ChannelError::InDoubt {
            reason: format!("timed out after sending: {error}"),
        };
    }
    ChannelError::InDoubt {
        reason: format!("the request may have been received: {error}"),
    }
}

/// Reads at most `limit` bytes of a response body.
pub(crate) async fn read_body(
    response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ChannelError> {
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| classify_transport_error(&error))?
    {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
