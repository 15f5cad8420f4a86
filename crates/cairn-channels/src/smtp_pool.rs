//! The SMTP connection pool and the staged send behind [`crate::smtp::SmtpChannel`].
//!
//! Built on lettre's `AsyncSmtpConnection` rather than its pooled transport for two reasons:
//! - **Exact failure classes.** The transaction runs stage by stage (MAIL, RCPT, DATA, then the body
//!   and its final reply), so a failure before the body is sent is retried on a fresh connection or
//!   reported as transient, and only a broken connection or a timeout *after* the body went out is
//!   in doubt.
//! - **Latency.** Plain and STARTTLS connections set `TCP_NODELAY`: lettre writes the body and the
//!   terminating `.` separately, which otherwise waits on Nagle's algorithm and the server's delayed
//!   ACK (milliseconds per message). Implicit TLS (port 465) connections are opened by lettre itself.
//!
//! Idle connections are reused (last in, first out) and dropped after [`IDLE_TIMEOUT`]; at most
//! `max_connections` exist at once.

use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::{Mutex, Semaphore};

use crate::ChannelError;

/// Idle connections older than this are closed rather than reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a connection is secured.
#[derive(Clone)]
pub(crate) enum Security {
    Plain,
    StartTls(TlsParameters),
    ImplicitTls(TlsParameters),
}

pub(crate) struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

/// A message body as one SMTP write: dot-stuffed (RFC 5321 §4.5.2) and followed by the
/// terminating `<CRLF>.<CRLF>`, so the body and its end go out in one segment.
struct TerminatedBody<'a>(&'a str);

impl std::fmt::Display for TerminatedBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.starts_with('.') {
            f.write_str(".")?;
        }
        let mut lines = self.0.split("\r\n.");
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for rest in lines {
            f.write_str("\r\n..")?;
            f.write_str(rest)?;
        }
        f.write_str("\r\n.\r\n")
    }
}

/// Where in the transaction a failure happened.
enum Stage {
    /// The connection broke (or timed out) before any of the message was sent.
    BrokenBeforeBody,
    /// The server refused the envelope (a 4xx or 5xx reply to MAIL, RCPT or DATA).
    BeforeBody,
    /// The body (or part of it) was sent.
    Body,
}

fn classify_reply(error: &lettre::transport::smtp::Error) -> Option<ChannelError> {
    let code = error
        .status()
        .map(|code| code.to_string())
        .unwrap_or_default();
    if error.is_permanent() {
        let invalid_recipient = matches!(code.as_str(), "550" | "551" | "553");
        return Some(ChannelError::Permanent {
            code,
            reason: error.to_string(),
            invalid_recipient,
        });
    }
    if error.is_transient() {
        return Some(ChannelError::transient(format!("{code}: {error}")));
    }
    None
}

impl SmtpPool {
    pub(crate) fn new(
        host: String,
        port: u16,
        security: Security,
        credentials: Option<Credentials>,
        hello: ClientId,
        timeout: Duration,
        max_connections: usize,
    ) -> SmtpPool {
        debug_assert!(max_connections > 0);
        SmtpPool {
            host,
            port,
            security,
            credentials,
            hello,
            timeout,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_connections),
        }
    }

    async fn within<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<Result<T, lettre::transport::smtp::Error>, ()> {
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| ())
    }

    /// Opens, secures and authenticates a connection. Every failure here is before any message
    /// was sent: transient, or permanent for a refused login (535) and other 5xx replies.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ChannelError> {
        let timed_out = || {
            ChannelError::transient(format!(
                "smtp: no answer from {}:{} within {:?}",
                self.host, self.port, self.timeout
            ))
        };
        let to_error = |error: lettre::transport::smtp::Error| {
            classify_reply(&error)
                .unwrap_or_else(|| ChannelError::transient(format!("smtp: {error}")))
        };
        let mut connection = match &self.security {
            Security::ImplicitTls(parameters) => self
                .within(AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    Some(parameters.clone()),
                    None,
                ))
                .await
                .map_err(|()| timed_out())?
                .map_err(to_error)?,
            Security::Plain | Security::StartTls(_) => {
                let stream = tokio::time::timeout(
                    self.timeout,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(|error| {
                    ChannelError::transient(format!(
                        "cannot connect to {}:{}: {error}",
                        self.host, self.port
                    ))
                })?;
                let _ = stream.set_nodelay(true);
                let mut connection = self
                    .within(AsyncSmtpConnection::connect_with_transport(
                        Box::new(stream),
                        &self.hello,
                    ))
                    .await
                    .map_err(|()| timed_out())?
                    .map_err(to_error)?;
                if let Security::StartTls(parameters) = &self.security {
                    self.within(connection.starttls(parameters.clone(), &self.hello))
                        .await
                        .map_err(|()| timed_out())?
                        .map_err(to_error)?;
                }
                connection
            }
        };
        if let Some(credentials) = &self.credentials {
            self.within(connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials))
                .await
                .map_err(|()| timed_out())?
                .map_err(to_error)?;
        }
        Ok(connection)
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().await;
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && !connection.has_broken() {
                return Some(connection);
            }
        }
        None
    }

    /// One transaction on one connection.
    async fn transact(
        &self,
        connection: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<String, (Stage, ChannelError)> {
        let before = |error: ChannelError| (Stage::BeforeBody, error);
        let timed_out = |stage| {
            (
                stage,
                ChannelError::InDoubt {
                    reason: format!("smtp: no answer within {:?}", self.timeout),
                },
            )
        };
        let mut parameters = Vec::new();
        if !body.is_ascii()
            && connection
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let non_ascii_address = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
        if non_ascii_address {
            parameters.push(MailParameter::SmtpUtfEight);
        }
        let network = |error: lettre::transport::smtp::Error| {
            ChannelError::transient(format!("smtp: {error}"))
        };
        let steps_before_body = async {
            connection
                .command(Mail::new(envelope.from().cloned(), parameters))
                .await?;
            for recipient in envelope.to() {
                connection
                    .command(Rcpt::new(recipient.clone(), Vec::new()))
                    .await?;
            }
            connection.command(Data).await
        };
        match tokio::time::timeout(self.timeout, steps_before_body).await {
            Err(_) => {
                let reason = format!(
                    "smtp: no answer within {:?} before the body was sent",
                    self.timeout
                );
                return Err((Stage::BrokenBeforeBody, ChannelError::transient(reason)));
            }
            Ok(Err(error)) => {
                return Err(match classify_reply(&error) {
                    Some(refused) => before(refused),
                    None => (Stage::BrokenBeforeBody, network(error)),
                })
            }
            Ok(Ok(_)) => {}
        }
        let sent = async {
            match std::str::from_utf8(body) {
                Ok(text) => connection.command(TerminatedBody(text)).await,
                Err(_) => connection.message(body).await,
            }
        };
        match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => Err(timed_out(Stage::Body)),
            Ok(Ok(response)) => Ok(response.message().collect::<Vec<_>>().join(" ")),
            Ok(Err(error)) => Err((
                Stage::Body,
                classify_reply(&error).unwrap_or_else(|| ChannelError::InDoubt {
                    reason: format!("smtp: connection lost after the body was sent: {error}"),
                }),
            )),
        }
    }

    /// Sends one message; returns the server's final reply text.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<String, ChannelError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ChannelError::transient("smtp pool closed"))?;
        // A reused connection may have been closed by the server while idle: one retry on a fresh
        // connection, which is safe because nothing was sent yet.
        if let Some(mut connection) = self.take_idle().await {
            match self.transact(&mut connection, envelope, body).await {
                Ok(reply) => {
                    self.idle.lock().await.push((connection, Instant::now()));
                    return Ok(reply);
                }
                Err((Stage::BrokenBeforeBody, _)) => {}
                Err((_, error)) => return Err(error),
            }
        }
        let mut connection = self.connect().await?;
        let reply = self
            .transact(&mut connection, envelope, body)
            .await
            .map_err(|(_, error)| error)?;
        self.idle.lock().await.push((connection, Instant::now()));
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::TerminatedBody;
    use proptest::prelude::*;

    #[test]
    fn bodies_are_dot_stuffed_and_terminated() {
        assert_eq!(
            TerminatedBody("a\r\n.b\r\n..c").to_string(),
            "a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(TerminatedBody(".x").to_string(), "..x\r\n.\r\n");
    }

    proptest! {
        #[test]
        fn un_stuffing_gives_the_body_back(lines in proptest::collection::vec("[.a-z ]{0,6}", 1..8)) {
            let body = lines.join("\r\n");
            let wire = TerminatedBody(&body).to_string();
            let content = wire.strip_suffix("\r\n.\r\n").unwrap();
            prop_assert!(!content.split("\r\n").any(|line| line == "."), "no line is a lone dot");
            let unstuffed: Vec<String> = content.split("\r\n").map(|line| line.strip_prefix('.').unwrap_or(line).to_owned()).collect();
            prop_assert_eq!(unstuffed.join("\r\n"), body);
        }
    }
}
