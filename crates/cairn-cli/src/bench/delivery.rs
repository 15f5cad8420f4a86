//! `cairn bench delivery`: personalized HTML emails decided by volume control, rendered, tracked,
//! built as MIME and sent over SMTP through the pooled client to a minimal in-process SMTP sink, and
//! SMS in Twilio's wire format to a minimal in-process HTTP sink, as fast as possible on this machine.
//!
//! Each figure is printed with the reference it is compared to in the same run: the full email
//! pipeline against the raw SMTP transport of a pre-built message (the client + sink limit), and
//! Cairn's CPU time apart from the sinks'. The per-message latency is from taking a message off the
//! queue (as the dispatcher takes it from the outbox) until the provider acknowledged it. See
//! `docs/bench-delivery.md`.

mod fixture;
mod sinks;

use super::report::Machine;
use anyhow::{bail, Context};
use cairn_channels::clock::FixedWallClock;
use cairn_channels::smtp::{SmtpChannel, SmtpConfig, SmtpSecurity};
use cairn_channels::twilio::{TwilioChannel, TwilioConfig};
use cairn_channels::{ChannelProvider, EmailMessage, OutboundMessage, SmsMessage};
use clap::Args;
use fixture::{Fixture, NOW_MS};
use hdrhistogram::Histogram;
use serde_json::json;
use sinks::Sinks;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Messages of each kind by default, and with `--quick`.
const DEFAULT_MESSAGES: usize = 100_000;
const QUICK_MESSAGES: usize = 20_000;
/// Target of the delivery issue for the full email pipeline on this class of machine.
const TARGET_EMAILS_PER_S: f64 = 5_500.0;
/// Target of the delivery issue for one volume-control check.
const TARGET_CAP_CHECK_NS: f64 = 2_000.0;

#[derive(Debug, Args)]
pub struct DeliveryArgs {
    /// 20,000 emails and 20,000 SMS instead of 100,000 of each: the whole run takes under a minute.
    #[arg(long)]
    quick: bool,
    /// Also print every figure as one JSON object, as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Emails to send (default 100,000, or 20,000 with --quick).
    #[arg(long, value_name = "N")]
    emails: Option<usize>,
    /// SMS to send (default 100,000, or 20,000 with --quick).
    #[arg(long, value_name = "N")]
    sms: Option<usize>,
    /// Concurrent senders.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// SMTP connections in the pool.
    #[arg(long, default_value_t = 16)]
    pool: u32,
}

pub fn run(args: DeliveryArgs) -> anyhow::Result<()> {
    let default = if args.quick {
        QUICK_MESSAGES
    } else {
        DEFAULT_MESSAGES
    };
    let emails = args.emails.unwrap_or(default);
    let sms = args.sms.unwrap_or(default);
    if emails == 0 || sms == 0 || args.concurrency == 0 || args.pool == 0 {
        bail!("--emails, --sms, --concurrency and --pool must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(super::usage::CLIENT_THREADS)
        .enable_all()
        .build()
        .context("cannot start the benchmark's runtime")?;
    let report = runtime.block_on(measure(&args, emails, sms))?;
    println!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    Ok(())
}

/// What one sending phase measured.
struct Run {
    per_second: f64,
    /// Messages per second of CPU time this process used (senders and in-process sinks together).
    per_cpu_second: f64,
    /// Messages per second of CPU time Cairn's side used (the process minus the sinks' thread).
    per_client_cpu_second: f64,
    sent: u64,
    held: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Everything one run measured.
struct DeliveryReport {
    machine: Machine,
    load_average: String,
    concurrency: usize,
    pool: u32,
    html_bytes: usize,
    decide_ns: f64,
    prepare_per_s: f64,
    mime_us: f64,
    raw: Run,
    full: Run,
    sms: Run,
    received: (u64, u64),
    total_s: f64,
}

async fn measure(args: &DeliveryArgs, emails: usize, sms: usize) -> anyhow::Result<DeliveryReport> {
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fixture = Arc::new(Fixture::new()?);
    let sample = fixture
        .prepare(0)
        .context("the first profile may receive, but its email was held or failed to render")?;
    let html_bytes = sample.html.as_ref().map_or(0, String::len);
    eprintln!(
        "cairn bench delivery: {emails} emails, {sms} SMS; email html {html_bytes} bytes, text {} bytes",
        sample.text.as_ref().map_or(0, String::len)
    );

    eprintln!("measuring decide and render on one core");
    let decide_ns = fixture.decide_cost_ns(1_000_000);
    let prepare_per_s = fixture.prepare_rate(emails.min(20_000));

    let sinks = Sinks::start()?;
    let mut config = SmtpConfig::new(
        "127.0.0.1",
        sinks.smtp_port,
        SmtpSecurity::None,
        "Cairn <news@mail.example.com>",
    );
    config.pool_max_connections = args.pool;
    let smtp_channel =
        SmtpChannel::new(&config).map_err(|error| anyhow::anyhow!("SMTP client: {error}"))?;
    let mime_rounds = 5_000;
    let mime_started = Instant::now();
    for _ in 0..mime_rounds {
        let message = smtp_channel
            .build_message(&sample)
            .map_err(|error| anyhow::anyhow!("MIME build: {error}"))?;
        std::hint::black_box(message.formatted().len());
    }
    let mime_us = mime_started.elapsed().as_secs_f64() * 1e6 / mime_rounds as f64;
    let smtp: Arc<dyn ChannelProvider> = Arc::new(smtp_channel);

    // Warm the pool, then the raw transport reference: the same pre-built email, no rendering.
    eprintln!("raw SMTP transport (reference)");
    let pre_built = move |sample: EmailMessage| {
        move |index: usize| {
            Some(OutboundMessage::Email(EmailMessage {
                message_id: format!("raw_{index}"),
                ..sample.clone()
            }))
        }
    };
    send_all(
        &sinks,
        args.concurrency * 4,
        args.concurrency,
        smtp.clone(),
        pre_built(sample.clone()),
    )
    .await?;
    let raw = send_all(
        &sinks,
        emails,
        args.concurrency,
        smtp.clone(),
        pre_built(sample),
    )
    .await?;
    eprintln!("full email pipeline");
    let full = send_all(&sinks, emails, args.concurrency, smtp, {
        let fixture = fixture.clone();
        move |index| fixture.prepare(index).map(OutboundMessage::Email)
    })
    .await?;

    eprintln!("SMS over HTTP");
    let twilio: Arc<dyn ChannelProvider> = Arc::new(
        TwilioChannel::new(
            TwilioConfig {
                base_url: format!("http://127.0.0.1:{}", sinks.http_port),
                account_sid: "AC00000000000000000000000000000000".into(),
                auth_token: "token".into(),
                from: Some("+15005550006".into()),
                messaging_service_sid: None,
                status_callback_url: Some(
                    "https://cairn.example.com/hooks/twilio/status?cairn_message_id={message_id}"
                        .into(),
                ),
                timeout_ms: 10_000,
            },
            Arc::new(FixedWallClock(NOW_MS)),
        )
        .map_err(|error| anyhow::anyhow!("Twilio client: {error}"))?,
    );
    let sms = send_all(&sinks, sms, args.concurrency, twilio, |index| {
        Some(OutboundMessage::Sms(SmsMessage {
            message_id: format!("sms_{index}"),
            to: format!("+1415555{:04}", index % 10_000),
            body: format!(
                "Hi customer {index}, your cart is waiting: https://s.example.com/c/{index}"
            ),
        }))
    })
    .await?;

    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();
    Ok(DeliveryReport {
        machine: Machine::detect(),
        load_average,
        concurrency: args.concurrency,
        pool: args.pool,
        html_bytes,
        decide_ns,
        prepare_per_s,
        mime_us,
        raw,
        full,
        sms,
        received: sinks.received(),
        total_s: started.elapsed().as_secs_f64(),
    })
}

/// Runs `count` jobs on `concurrency` tasks; each job prepares (or not) and sends one message.
async fn send_all<F>(
    sinks: &Sinks,
    count: usize,
    concurrency: usize,
    provider: Arc<dyn ChannelProvider>,
    make: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Option<OutboundMessage> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let cpu_before = cpu_seconds_of(libc::RUSAGE_SELF);
    let sink_cpu_before = sinks.cpu_seconds()?;
    let next = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, next, held, provider) =
            (make.clone(), next.clone(), held.clone(), provider.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = latency_histogram()?;
            let mut sent = 0u64;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok((latencies, sent));
                }
                let begun = Instant::now();
                let Some(message) = make(index) else {
                    held.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                provider
                    .send(&message, message.message_id())
                    .await
                    .map_err(|error| anyhow::anyhow!("a sink refused a message: {error}"))?;
                latencies.saturating_record(begun.elapsed().as_micros() as u64);
                sent += 1;
            }
        }));
    }
    let mut latencies = latency_histogram()?;
    let mut sent = 0;
    for worker in workers {
        let (histogram, count) = worker.await.context("a sender panicked")??;
        latencies
            .add(histogram)
            .context("cannot merge latency histograms")?;
        sent += count;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds_of(libc::RUSAGE_SELF) - cpu_before;
    let sink_cpu = sinks.cpu_seconds()? - sink_cpu_before;
    Ok(Run {
        per_second: sent as f64 / elapsed,
        per_cpu_second: sent as f64 / cpu.max(1e-9),
        per_client_cpu_second: sent as f64 / (cpu - sink_cpu).max(1e-9),
        sent,
        held: held.load(Ordering::Relaxed),
        p50_ms: latencies.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// Microseconds up to an hour, 3 significant digits.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("cannot create a latency histogram")
}

/// User + system CPU time of the process (`RUSAGE_SELF`) or the calling thread (`RUSAGE_THREAD`).
fn cpu_seconds_of(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a complete `rusage` into the pointer we own; all-zero is valid too.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

impl DeliveryReport {
    fn projected(&self) -> f64 {
        self.full.per_client_cpu_second * self.machine.cores as f64
    }

    fn ratio_to_raw(&self) -> f64 {
        if self.raw.per_second > 0.0 {
            self.full.per_second / self.raw.per_second
        } else {
            0.0
        }
    }

    fn table(&self) -> String {
        let (full, raw, sms) = (&self.full, &self.raw, &self.sms);
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        [
            format!(
                "cairn bench delivery: {} cores ({}), load average {}, pool {}, concurrency {}; {:.0} s",
                self.machine.cores, self.machine.cpu_model, self.load_average, self.pool, self.concurrency, self.total_s
            ),
            format!(
                "  decide (2 caps, quiet hours, consent)   {:>10.0} ns/message   target <= {TARGET_CAP_CHECK_NS:.0} ns: {}",
                self.decide_ns, met(self.decide_ns <= TARGET_CAP_CHECK_NS)
            ),
            format!("  decide + render + track (1 core)        {:>10.0} emails/s ({} bytes of HTML)", self.prepare_per_s, self.html_bytes),
            format!("  MIME build + format                     {:>10.1} us/email", self.mime_us),
            format!(
                "  raw SMTP transport (pre-built email)    {:>10.0} emails/s   {:>6.0}/CPU-s   p99 {:.2} ms   (reference)",
                raw.per_second, raw.per_cpu_second, raw.p99_ms
            ),
            format!(
                "  full email pipeline over SMTP           {:>10.0} emails/s   {:>6.0}/CPU-s   p50 {:.2} ms  p99 {:.2} ms   {:.2}x of raw transport   target >= {TARGET_EMAILS_PER_S:.0}/s: {}",
                full.per_second, full.per_cpu_second, full.p50_ms, full.p99_ms, self.ratio_to_raw(), met(full.per_second >= TARGET_EMAILS_PER_S)
            ),
            format!(
                "      ({} sent, {} held by volume control; Cairn's side alone: {:.0} emails per CPU-second, {:.0}/s projected on {} idle cores)",
                full.sent, full.held, full.per_client_cpu_second, self.projected(), self.machine.cores
            ),
            format!(
                "  SMS, Twilio wire format over HTTP       {:>10.0} messages/s {:>6.0}/CPU-s   p50 {:.2} ms  p99 {:.2} ms",
                sms.per_second, sms.per_cpu_second, sms.p50_ms, sms.p99_ms
            ),
            format!("  sinks received: {} emails, {} HTTP requests", self.received.0, self.received.1),
        ]
        .join("\n")
    }

    fn json(&self) -> serde_json::Value {
        let round = |value: f64, decimals: i32| {
            let scale = 10f64.powi(decimals);
            (value * scale).round() / scale
        };
        json!({
            "benchmark": "delivery",
            "emails_per_s": round(self.full.per_second, 0),
            "emails_per_cpu_s": round(self.full.per_cpu_second, 0),
            "emails_per_client_cpu_s": round(self.full.per_client_cpu_second, 0),
            "emails_per_s_projected_idle_cores": round(self.projected(), 0),
            "email_p50_ms": round(self.full.p50_ms, 3),
            "email_p99_ms": round(self.full.p99_ms, 3),
            "outbox_to_provider_p99_ms": round(self.full.p99_ms, 3),
            "emails_sent": self.full.sent,
            "emails_held": self.full.held,
            "raw_smtp_emails_per_s": round(self.raw.per_second, 0),
            "raw_smtp_emails_per_client_cpu_s": round(self.raw.per_client_cpu_second, 0),
            "ratio_to_raw_smtp": round(self.ratio_to_raw(), 3),
            "http_messages_per_s": round(self.sms.per_second, 0),
            "http_messages_per_cpu_s": round(self.sms.per_cpu_second, 0),
            "http_messages_per_client_cpu_s": round(self.sms.per_client_cpu_second, 0),
            "http_p99_ms": round(self.sms.p99_ms, 3),
            "cap_check_ns": round(self.decide_ns, 0),
            "prepare_per_s_one_core": round(self.prepare_per_s, 0),
            "mime_us_per_email": round(self.mime_us, 1),
            "sink_emails_received": self.received.0,
            "sink_http_received": self.received.1,
            "load_average": self.load_average,
            "cores": self.machine.cores,
            "cpu_model": self.machine.cpu_model,
            "memory_mib": self.machine.memory_mib,
            "total_s": round(self.total_s, 1),
            "targets_met": self.full.per_second >= TARGET_EMAILS_PER_S && self.decide_ns <= TARGET_CAP_CHECK_NS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_sends_everything_to_the_sinks_and_reports_the_figures() {
        let args = DeliveryArgs {
            quick: false,
            json: true,
            emails: Some(300),
            sms: Some(200),
            concurrency: 8,
            pool: 2,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let report = runtime
            .block_on(measure(&args, 300, 200))
            .expect("the benchmark runs");
        // Warm-up and raw transport send pre-built emails; the full pipeline sends what volume
        // control lets through (held ones are decided, not sent).
        assert_eq!(report.full.sent + report.full.held, 300);
        assert!(
            report.full.sent > 0 && report.full.held > 0,
            "the cap holds some back"
        );
        assert_eq!(
            report.received,
            (8 * 4 + report.raw.sent + report.full.sent, report.sms.sent)
        );
        assert_eq!(report.sms.sent, 200);
        let json = report.json();
        for key in [
            "emails_per_s",
            "http_messages_per_s",
            "cap_check_ns",
            "outbox_to_provider_p99_ms",
        ] {
            assert!(
                json[key].as_f64().is_some_and(|value| value > 0.0),
                "{key}: {json}"
            );
        }
    }
}
