"""A real SMTP server (aiosmtpd) for Cairn's channel tests.

Each message received is written to OUT_DIR as NNNNNN.eml (the exact DATA bytes) and NNNNNN.json
(envelope: mail_from, rcpt_tos, the authenticated login, whether the session used TLS, and the
DKIM verdict when --dkim-public-key is given). Prints "READY <port>" on stdout once listening, then
serves until stdin closes or it is terminated.

Options:
  --port N                 0 picks a free port
  --out-dir DIR
  --tls-cert PEM --tls-key PEM   offer STARTTLS and require it before MAIL and AUTH
  --auth USER:PASSWORD     require AUTH (PLAIN or LOGIN) with these credentials
  --dkim-public-key B64    verify DKIM-Signature against this key (the DNS TXT record is answered locally)
  --reject-rcpt ADDRESS    answer 550 5.1.1 to RCPT TO for this address
  --slow-data-ms N         wait N ms after receiving a message before answering 250 (the message is
                           stored first: a client that gives up meanwhile leaves it "in doubt")
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import threading
import warnings

warnings.filterwarnings("ignore", message="Session.login_data is deprecated")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out_dir, dkim_public_key, reject_rcpt, slow_data_ms):
        self.slow_data_ms = slow_data_ms
        self.out_dir = out_dir
        self.dkim_public_key = dkim_public_key
        self.reject_rcpt = reject_rcpt
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.reject_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            number = self.count
        raw = envelope.original_content or envelope.content
        dkim_verdict = None
        if self.dkim_public_key:
            import dkim

            record = ("v=DKIM1; k=rsa; p=" + self.dkim_public_key).encode()

            def dns(name, timeout=5):
                return record

            dkim_verdict = bool(dkim.verify(raw, dnsfunc=dns))
        base = os.path.join(self.out_dir, "%06d" % number)
        with open(base + ".eml.tmp", "wb") as handle:
            handle.write(raw)
        os.replace(base + ".eml.tmp", base + ".eml")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            "tls": session.ssl is not None,
            "dkim_valid": dkim_verdict,
        }
        with open(base + ".json", "w") as handle:
            json.dump(meta, handle)
        if self.slow_data_ms:
            await asyncio.sleep(self.slow_data_ms / 1000.0)
        return "250 OK queued as sink-%06d" % number


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth")
    parser.add_argument("--dkim-public-key")
    parser.add_argument("--reject-rcpt")
    parser.add_argument("--slow-data-ms", type=int, default=0)
    args = parser.parse_args()

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = Handler(args.out_dir, args.dkim_public_key, args.reject_rcpt, args.slow_data_ms)
    kwargs = {}
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    if authenticator is not None:
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls_context is not None)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port or 0, server_hostname="localhost", **kwargs)
    if args.port == 0:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            controller.port = probe.getsockname()[1]
    controller.start()
    print("READY %d" % controller.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
