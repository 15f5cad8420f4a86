//! Delivery benchmark: personalized HTML emails rendered, volume-checked (`decide`) and sent over
//! SMTP through the pooled client to a minimal in-process SMTP sink, and SMS in Twilio's wire format
//! to a minimal in-process HTTP sink, as fast as possible on this machine.
//!
//! ```text
//! cargo run --release -p cairn-channels --example bench_delivery -- [--quick] [--json]
//!     [--emails N] [--sms N] [--concurrency C] [--pool P]
//! ```
//! Prints each figure with the reference it is compared to in the same run: full email pipeline vs
//! raw SMTP transport of a pre-built message (the client+sink limit), render+decide on one core.
//! `--json` prints one JSON object as the last line (for `cairn bench delivery`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_channels::clock::FixedWallClock;
use cairn_channels::smtp::{SmtpChannel, SmtpConfig, SmtpSecurity};
use cairn_channels::twilio::{TwilioChannel, TwilioConfig};
use cairn_channels::{ChannelProvider, EmailMessage, ListUnsubscribe, OutboundMessage, SmsMessage};
use cairn_delivery::{
    decide, Channel, ConsentState, DeliveryPolicy, FrequencyCap, MessageCategory,
    PriorityReservation, QuietHours, SendAttempt, SendHistory, SigningKey, TrackingIds,
    TrackingOptions, TrackingSigner, YieldAction,
};
use cairn_template::{
    compile, CompiledTemplate, RenderContext, TemplateChannel, TemplateContent, TemplateDocument,
    VariableSchema,
};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const DAY: i64 = 86_400_000;
const NOW_MS: i64 = 1_767_348_000_000; // 2026-01-02T10:00:00Z

struct Options {
    emails: usize,
    sms: usize,
    concurrency: usize,
    pool: u32,
    json: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        emails: value("--emails").unwrap_or(if quick { 20_000 } else { 100_000 }),
        sms: value("--sms").unwrap_or(if quick { 20_000 } else { 100_000 }),
        concurrency: value("--concurrency").unwrap_or(64),
        pool: value("--pool").map(|v: usize| v as u32).unwrap_or(16),
        json: args.iter().any(|a| a == "--json"),
    }
}

/// The sinks run on their own OS thread and single-threaded runtime, so their CPU time can be
/// measured apart from Cairn's (`RUSAGE_THREAD`).
struct Sinks {
    smtp_port: u16,
    http_port: u16,
    smtp_received: Arc<AtomicU64>,
    http_received: Arc<AtomicU64>,
    cpu_probe: std::sync::mpsc::Sender<std::sync::mpsc::Sender<f64>>,
}

impl Sinks {
    fn start() -> Sinks {
        let smtp_received = Arc::new(AtomicU64::new(0));
        let http_received = Arc::new(AtomicU64::new(0));
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        let (probe_tx, probe_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<f64>>();
        let (smtp_count, http_count) = (smtp_received.clone(), http_received.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let smtp_port = smtp_sink(smtp_count).await;
                let http_port = http_sink(http_count).await;
                ports_tx.send((smtp_port, http_port)).unwrap();
                loop {
                    // Answer CPU probes from this thread (the sinks run on it).
                    while let Ok(reply) = probe_rx.try_recv() {
                        let _ = reply.send(cpu_seconds_of(libc::RUSAGE_THREAD));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        });
        let (smtp_port, http_port) = ports_rx.recv().unwrap();
        Sinks {
            smtp_port,
            http_port,
            smtp_received,
            http_received,
            cpu_probe: probe_tx,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        let (reply_tx, reply_rx) = std::sync::mpsc::channel();
        self.cpu_probe.send(reply_tx).unwrap();
        reply_rx.recv().unwrap()
    }
}

/// A minimal SMTP server: enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
async fn smtp_sink(received: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let _ = socket.set_nodelay(true);
            let received = received.clone();
            tokio::spawn(async move {
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
            });
        }
    });
    port
}

/// A minimal HTTP/1.1 keep-alive server answering Twilio's 201 JSON to every POST.
async fn http_sink(received: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let _ = socket.set_nodelay(true);
            let received = received.clone();
            tokio::spawn(async move {
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
                    let answer =
                        br#"{"sid":"SM00000000000000000000000000000000","status":"queued"}"#;
                    let head = format!("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", answer.len());
                    if writer.write_all(head.as_bytes()).await.is_err()
                        || writer.write_all(answer).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn template() -> CompiledTemplate {
    let html = format!(
        "<html><body><table width=\"600\"><tr><td><h1>Hello {{{{ profile.first_name }}}},</h1>\
         <p>Your cart still holds <b>{{{{ event.properties.product }}}}</b> at {{{{ event.properties.price | currency('EUR') }}}}.</p>\
         {}<p><a href=\"https://shop.example.com/cart?c={{{{ event.properties.cart_id }}}}\">Back to your cart</a></p>\
         <p>Offer valid until {{{{ event.properties.expires | date('long') }}}}.</p>\
         <p><a href=\"{{{{ message.unsubscribe_url }}}}\">Unsubscribe</a></p></td></tr></table></body></html>",
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. \
         <a href=\"https://shop.example.com/new\">New arrivals</a></p>"
            .repeat(8)
    );
    let document = TemplateDocument {
        id: "cart".into(),
        name: "Cart abandonment".into(),
        channel: TemplateChannel::Email,
        default_locale: "en".into(),
        variants: BTreeMap::from([(
            "en".to_owned(),
            TemplateContent {
                subject: Some("{{ profile.first_name }}, you left something behind".into()),
                html: Some(html),
                text: Some("Hello {{ profile.first_name }}, your cart still holds {{ event.properties.product }}.\nUnsubscribe: {{ message.unsubscribe_url }}".into()),
                ..TemplateContent::default()
            },
        )]),
    };
    compile(
        &document,
        &VariableSchema::from_paths(["profile.first_name", "event.properties.*"]),
    )
    .unwrap()
}

fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        frequency_caps: vec![
            FrequencyCap {
                channel: Some(Channel::Email),
                window_ms: 7 * DAY,
                max_messages: 3,
                reservation: Some(PriorityReservation {
                    min_priority: 8,
                    slots: 1,
                }),
            },
            FrequencyCap {
                channel: None,
                window_ms: DAY,
                max_messages: 5,
                reservation: None,
            },
        ],
        quiet_hours: Some(QuietHours::parse("21:00", "08:00").unwrap()),
        ..DeliveryPolicy::default()
    }
    .validated()
    .unwrap()
}

struct Fixture {
    template: CompiledTemplate,
    policy: DeliveryPolicy,
    signer: TrackingSigner,
    histories: Vec<SendHistory>,
    consent: ConsentState,
    attempt: SendAttempt,
}

fn fixture() -> Fixture {
    let policy = policy();
    let histories = (0..1_000)
        .map(|profile| {
            let mut history = SendHistory::new();
            for day in 1..=(profile % 3) as i64 {
                history.record(
                    NOW_MS - day * 2 * DAY,
                    Channel::Email,
                    MessageCategory::Marketing,
                    policy.history_retention_ms(),
                );
            }
            history
        })
        .collect();
    Fixture {
        template: template(),
        policy,
        signer: TrackingSigner::new(
            "https://t.example.com",
            vec![SigningKey::new(b"bench-tracking-secret".to_vec(), "k").unwrap()],
        )
        .unwrap(),
        histories,
        consent: ConsentState::default(),
        attempt: SendAttempt {
            channel: Channel::Email,
            category: MessageCategory::Marketing,
            subscription_group: None,
            priority: 5,
            when_capped: YieldAction::Delay,
            in_quiet_hours: YieldAction::Delay,
            send_before_ms: None,
        },
    }
}

/// Decide, render and instrument message `index`; `None` when volume control holds it back.
fn prepare(fixture: &Fixture, index: usize) -> Option<EmailMessage> {
    let history = &fixture.histories[index % fixture.histories.len()];
    let decision = decide(
        &fixture.policy,
        &fixture.attempt,
        &fixture.consent,
        history,
        Some(chrono_tz::Europe::Paris),
        NOW_MS,
        || None,
    );
    if decision != cairn_delivery::Decision::Send {
        return None;
    }
    let message_id = format!("msg_{index:09}");
    let profile_id = format!("prof_{:06}", index % 1_000);
    let ids = TrackingIds {
        message_id: message_id.clone(),
        profile_id,
    };
    let unsubscribe_url = fixture.signer.unsubscribe_url(&ids, None).ok()?;
    let profile = serde_json::json!({"first_name": format!("Customer {index}")});
    let event = serde_json::json!({"properties": {"product": "Trail boots", "price": 129.9, "cart_id": index, "expires": "2026-01-09T23:00:00Z"}});
    let rendered = fixture
        .template
        .render(&RenderContext {
            profile: &profile,
            event: Some(&event),
            journey: None,
            federated: None,
            message_id: &message_id,
            unsubscribe_url: Some(&unsubscribe_url),
            locale: Some("en"),
            time_zone: Some(chrono_tz::Europe::Paris),
        })
        .ok()?;
    let html = cairn_delivery::instrument_html(
        &rendered.html?,
        &fixture.signer,
        &ids,
        TrackingOptions {
            opens: true,
            clicks: true,
        },
    )
    .ok()?;
    Some(EmailMessage {
        message_id,
        to: format!("customer{index}@example.com"),
        from: None,
        reply_to: None,
        subject: rendered.subject?,
        html: Some(html),
        text: rendered.text,
        list_unsubscribe: Some(ListUnsubscribe {
            url: unsubscribe_url,
            mailto: None,
        }),
    })
}

struct Run {
    per_second: f64,
    /// Messages per second of CPU time this process used (client and in-process sink together).
    per_cpu_second: f64,
    /// Messages per second of CPU time Cairn's side used (the process minus the sink thread).
    per_client_cpu_second: f64,
    sent: u64,
    held: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `count` jobs on `concurrency` tasks; each job prepares (or not) and sends one message.
async fn run<F>(
    sinks: &Sinks,
    count: usize,
    concurrency: usize,
    provider: Arc<dyn ChannelProvider>,
    make: F,
) -> Run
where
    F: Fn(usize) -> Option<OutboundMessage> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let cpu_before = cpu_seconds();
    let sink_cpu_before = sinks.cpu_seconds();
    let next = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, next, held, provider) =
            (make.clone(), next.clone(), held.clone(), provider.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3).unwrap();
            let mut sent = 0u64;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return (latencies, sent);
                }
                let begun = Instant::now();
                let Some(message) = make(index) else {
                    held.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                provider
                    .send(&message, message.message_id())
                    .await
                    .expect("the sink accepts everything");
                latencies.record(begun.elapsed().as_micros() as u64).ok();
                sent += 1;
            }
        }));
    }
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    let mut sent = 0;
    for worker in workers {
        let (histogram, count) = worker.await.unwrap();
        latencies.add(histogram).unwrap();
        sent += count;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let sink_cpu = sinks.cpu_seconds() - sink_cpu_before;
    Run {
        per_second: sent as f64 / elapsed,
        per_cpu_second: sent as f64 / cpu,
        per_client_cpu_second: sent as f64 / (cpu - sink_cpu).max(1e-9),
        sent,
        held: held.load(Ordering::Relaxed),
        p50_ms: latencies.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

/// User + system CPU time of this process so far (getrusage).
fn cpu_seconds() -> f64 {
    cpu_seconds_of(libc::RUSAGE_SELF)
}

/// User + system CPU time of the process (`RUSAGE_SELF`) or the calling thread (`RUSAGE_THREAD`).
fn cpu_seconds_of(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer we own.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn decide_cost_ns(fixture: &Fixture) -> f64 {
    let rounds = 1_000_000;
    let started = Instant::now();
    let mut sends = 0u64;
    for index in 0..rounds {
        let history = &fixture.histories[index % fixture.histories.len()];
        let decision = decide(
            std::hint::black_box(&fixture.policy),
            &fixture.attempt,
            &fixture.consent,
            history,
            Some(chrono_tz::Europe::Paris),
            std::hint::black_box(NOW_MS + index as i64),
            || None,
        );
        sends += u64::from(decision == cairn_delivery::Decision::Send);
    }
    std::hint::black_box(sends);
    started.elapsed().as_nanos() as f64 / rounds as f64
}

fn prepare_rate(fixture: &Fixture, count: usize) -> f64 {
    let started = Instant::now();
    let mut bytes = 0usize;
    for index in 0..count {
        if let Some(email) = prepare(fixture, index) {
            bytes += email.html.map_or(0, |h| h.len());
        }
    }
    std::hint::black_box(bytes);
    count as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = options();
    let fixture = Arc::new(fixture());
    let sample = prepare(&fixture, 0).expect("the first profile may receive");
    eprintln!(
        "email html: {} bytes, text: {} bytes",
        sample.html.as_ref().map_or(0, String::len),
        sample.text.as_ref().map_or(0, String::len)
    );

    let decide_ns = decide_cost_ns(&fixture);
    let prepare_per_s = prepare_rate(&fixture, options.emails.min(20_000));

    let sinks = Sinks::start();
    let smtp_port = sinks.smtp_port;
    let mut config = SmtpConfig::new(
        "127.0.0.1",
        smtp_port,
        SmtpSecurity::None,
        "Cairn <news@mail.example.com>",
    );
    config.pool_max_connections = options.pool;
    let smtp_channel = SmtpChannel::new(&config).unwrap();
    let mime_started = Instant::now();
    let mut mime_bytes = 0;
    for _ in 0..5_000 {
        mime_bytes += smtp_channel
            .build_message(&sample)
            .unwrap()
            .formatted()
            .len();
    }
    let mime_us = mime_started.elapsed().as_secs_f64() * 1e6 / 5_000.0;
    eprintln!(
        "MIME build + format: {mime_us:.1} us/email ({} bytes)",
        mime_bytes / 5_000
    );
    let smtp: Arc<dyn ChannelProvider> = Arc::new(smtp_channel);

    // Warm the pool, then the raw transport reference: the same pre-built email, no rendering.
    let _ = run(
        &sinks,
        options.concurrency * 4,
        options.concurrency,
        smtp.clone(),
        {
            let sample = sample.clone();
            move |_| Some(OutboundMessage::Email(sample.clone()))
        },
    )
    .await;
    let raw = run(&sinks, options.emails, options.concurrency, smtp.clone(), {
        let sample = sample.clone();
        move |index| {
            Some(OutboundMessage::Email(EmailMessage {
                message_id: format!("raw_{index}"),
                ..sample.clone()
            }))
        }
    })
    .await;
    let full = run(&sinks, options.emails, options.concurrency, smtp.clone(), {
        let fixture = fixture.clone();
        move |index| prepare(&fixture, index).map(OutboundMessage::Email)
    })
    .await;

    let http_port = sinks.http_port;
    let twilio: Arc<dyn ChannelProvider> = Arc::new(
        TwilioChannel::new(
            TwilioConfig {
                base_url: format!("http://127.0.0.1:{http_port}"),
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
        .unwrap(),
    );
    let sms = run(&sinks, options.sms, options.concurrency, twilio, |index| {
        Some(OutboundMessage::Sms(SmsMessage {
            message_id: format!("sms_{index}"),
            to: format!("+1415555{:04}", index % 10_000),
            body: format!(
                "Hi customer {index}, your cart is waiting: https://s.example.com/c/{index}"
            ),
        }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_owned();
    println!(
        "delivery benchmark ({cores} cores, load average {load}, pool {}, concurrency {})",
        options.pool, options.concurrency
    );
    println!("  decide (2 caps, quiet hours, consent)   {decide_ns:>10.0} ns/message   target <= 2000 ns");
    println!("  decide + render + track (1 core)        {prepare_per_s:>10.0} emails/s");
    println!(
        "  raw SMTP transport (pre-built email)    {:>10.0} emails/s   {:>6.0}/CPU-s   p99 {:.2} ms   (reference)",
        raw.per_second, raw.per_cpu_second, raw.p99_ms
    );
    println!(
        "  full email pipeline over SMTP           {:>10.0} emails/s   {:>6.0}/CPU-s   p50 {:.2} ms  p99 {:.2} ms   {:.2}x of raw transport   target >= 5500/s",
        full.per_second, full.per_cpu_second, full.p50_ms, full.p99_ms, full.per_second / raw.per_second
    );
    println!(
        "      ({} sent, {} held by volume control; Cairn's side alone: {:.0} emails per CPU-second, {:.0}/s projected on {cores} idle cores)",
        full.sent, full.held, full.per_client_cpu_second, full.per_client_cpu_second * cores as f64
    );
    println!(
        "  SMS, Twilio wire format over HTTP       {:>10.0} messages/s {:>6.0}/CPU-s   p50 {:.2} ms  p99 {:.2} ms",
        sms.per_second, sms.per_cpu_second, sms.p50_ms, sms.p99_ms
    );
    println!(
        "  sinks received: {} emails, {} HTTP requests",
        sinks.smtp_received.load(Ordering::Relaxed),
        sinks.http_received.load(Ordering::Relaxed)
    );
    if options.json {
        println!(
            "{}",
            serde_json::json!({
                "emails_per_s": full.per_second.round(),
                "emails_per_cpu_s": full.per_cpu_second.round(),
                "emails_per_client_cpu_s": full.per_client_cpu_second.round(),
                "emails_per_s_projected_idle_cores": (full.per_client_cpu_second * cores as f64).round(),
                "raw_smtp_emails_per_client_cpu_s": raw.per_client_cpu_second.round(),
                "http_messages_per_client_cpu_s": sms.per_client_cpu_second.round(),
                "http_messages_per_cpu_s": sms.per_cpu_second.round(),
                "load_average": load,
                "raw_smtp_emails_per_s": raw.per_second.round(),
                "email_p99_ms": full.p99_ms,
                "http_messages_per_s": sms.per_second.round(),
                "http_p99_ms": sms.p99_ms,
                "cap_check_ns": decide_ns.round(),
                "prepare_per_s_one_core": prepare_per_s.round(),
                "cores": cores,
            })
        );
    }
}
