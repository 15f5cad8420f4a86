//! The delivery benchmark's providers: a minimal SMTP server and a minimal HTTP/1.1 server answering
//! Twilio's `201`, in this process on their own OS thread and single-threaded runtime, so their CPU
//! time is measured apart (`RUSAGE_THREAD`) from Cairn's.

use super::cpu_seconds_of;
use anyhow::Context;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The running sinks and what they received.
pub struct Sinks {
    pub smtp_port: u16,
    pub http_port: u16,
    pub smtp_received: Arc<AtomicU64>,
    pub http_received: Arc<AtomicU64>,
    cpu_probe: mpsc::Sender<mpsc::Sender<f64>>,
}

impl Sinks {
    pub fn start() -> anyhow::Result<Sinks> {
        let smtp_received = Arc::new(AtomicU64::new(0));
        let http_received = Arc::new(AtomicU64::new(0));
        let (ports_tx, ports_rx) = mpsc::channel::<std::io::Result<(u16, u16)>>();
        let (probe_tx, probe_rx) = mpsc::channel::<mpsc::Sender<f64>>();
        let (smtp_count, http_count) = (smtp_received.clone(), http_received.clone());
        std::thread::Builder::new()
            .name("bench-sinks".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ports_tx.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let ports =
                        async { Ok((smtp_sink(smtp_count).await?, http_sink(http_count).await?)) }
                            .await;
                    let started = ports.is_ok();
                    let _ = ports_tx.send(ports);
                    if !started {
                        return;
                    }
                    loop {
                        // Answer CPU probes from this thread (the sinks run on it).
                        while let Ok(reply) = probe_rx.try_recv() {
                            let _ = reply.send(cpu_seconds_of(libc::RUSAGE_THREAD));
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            })
            .context("cannot start the sinks' thread")?;
        let (smtp_port, http_port) = ports_rx
            .recv()
            .context("the sinks' thread ended before it listened")?
            .context("the sinks cannot listen on loopback")?;
        Ok(Sinks {
            smtp_port,
            http_port,
            smtp_received,
            http_received,
            cpu_probe: probe_tx,
        })
    }

    /// CPU seconds the sinks' thread used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.cpu_probe
            .send(reply_tx)
            .context("the sinks' thread is gone")?;
        reply_rx.recv().context("the sinks' thread is gone")
    }

    pub fn received(&self) -> (u64, u64) {
        (
            self.smtp_received.load(Ordering::Relaxed),
            self.http_received.load(Ordering::Relaxed),
        )
    }
}

/// Binds a loopback port and serves each connection with `session` on a task of its own.
async fn serve_loopback<Session, Served>(session: Session) -> std::io::Result<u16>
where
    Session: Fn(TcpStream) -> Served + Send + 'static,
    Served: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(session(socket));
        }
    });
    Ok(port)
}

/// A minimal SMTP server: enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
async fn smtp_sink(received: Arc<AtomicU64>) -> std::io::Result<u16> {
    serve_loopback(move |socket| smtp_session(socket, received.clone())).await
}

/// One SMTP connection: every message accepted with `250` counts.
async fn smtp_session(socket: TcpStream, received: Arc<AtomicU64>) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    if writer.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line
            .get(..4)
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_default();
        let answer: &[u8] = match command.as_slice() {
            b"EHLO" | b"HELO" => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            b"DATA" => {
                if writer.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                received.fetch_add(1, Ordering::Relaxed);
                b"250 OK queued\r\n"
            }
            b"QUIT" => {
                let _ = writer.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        if writer.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A minimal HTTP/1.1 keep-alive server answering Twilio's 201 JSON to every POST.
async fn http_sink(received: Arc<AtomicU64>) -> std::io::Result<u16> {
    serve_loopback(move |socket| http_session(socket, received.clone())).await
}

/// One keep-alive HTTP connection: every request read whole counts.
async fn http_session(socket: TcpStream, received: Arc<AtomicU64>) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = String::new();
    loop {
        let mut content_length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        received.fetch_add(1, Ordering::Relaxed);
        let answer = br#"{"sid":"SM00000000000000000000000000000000","status":"queued"}"#;
        let head = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).await.is_err()
            || writer.write_all(answer).await.is_err()
        {
            return;
        }
    }
}
