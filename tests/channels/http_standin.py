"""A local stand-in for the HTTP providers Cairn talks to, for the channel tests.

It speaks each provider's documented wire format and checks every request against it, byte for
byte where the format fixes the bytes:
  POST /2010-04-01/Accounts/{AccountSid}/Messages.json   Twilio Messages API
  POST /v1/projects/{project}/messages:send               FCM HTTP v1
  POST /token                                             Google OAuth token endpoint (JWT bearer grant)
  POST /hooks/{name}                                      a webhook receiver verifying Cairn-Signature
Every request is recorded (method, path, headers, raw body, and the list of format violations found).
Control endpoints for the tests:
  GET  /_requests          the recorded requests, as JSON
  POST /_faults            JSON list of faults, consumed in order by matching requests:
                           {"path_prefix": "/2010", "status": 429, "retry_after": "7", "body": {...}}
                           {"path_prefix": "/v1", "delay_ms": 3000}   (answers normally after the delay)
Provider behaviours modelled after the documentation:
  Twilio: To "+15005550001" -> 400 code 21211; the same I-Twilio-Idempotency-Token returns the same SID
  FCM: tokens starting "unregistered" -> 404 UNREGISTERED; "malformed" -> 400 INVALID_ARGUMENT on message.token
Prints "READY <port>" on stdout once listening; exits when stdin closes.
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json$")
FCM_PATH = re.compile(r"^/v1/projects/([a-z0-9-]+)/messages:send$")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.requests = []
        self.faults = []
        self.twilio_sids = {}
        self.issued_tokens = set()


def form_serialize(pairs):
    """The WHATWG application/x-www-form-urlencoded serializer: alphanumerics and *-._ stay, space
    becomes +, every other byte of the UTF-8 encoding is percent-encoded (uppercase hex)."""
    def encode(text):
        out = []
        for byte in text.encode("utf-8"):
            char = chr(byte)
            if char.isascii() and (char.isalnum() or char in "*-._"):
                out.append(char)
            elif char == " ":
                out.append("+")
            else:
                out.append("%%%02X" % byte)
        return "".join(out)
    return "&".join(encode(key) + "=" + encode(value) for key, value in pairs)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin/1"

    def log_message(self, *args):
        pass

    @property
    def state(self):
        return self.server.state

    def reply(self, status, payload=None, headers=None):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_requests":
            with self.state.lock:
                return self.reply(200, self.state.requests)
        self.reply(404, {"error": "no such route"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/_faults":
            with self.state.lock:
                self.state.faults.extend(json.loads(body))
            return self.reply(200, {"ok": True})
        record = {
            "method": "POST",
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "violations": [],
        }
        with self.state.lock:
            self.state.requests.append(record)
            fault = None
            for index, candidate in enumerate(self.state.faults):
                if self.path.startswith(candidate.get("path_prefix", "")):
                    fault = self.state.faults.pop(index)
                    break
        if fault and "status" in fault:
            headers = {"Retry-After": fault["retry_after"]} if "retry_after" in fault else {}
            return self.reply(fault["status"], fault.get("body", {"message": "injected"}), headers)
        if fault and "delay_ms" in fault:
            time.sleep(fault["delay_ms"] / 1000.0)
        twilio = TWILIO_PATH.match(self.path)
        fcm = FCM_PATH.match(self.path)
        if twilio:
            return self.twilio(record, twilio.group(1), body)
        if fcm:
            return self.fcm(record, body)
        if self.path == "/token":
            return self.token(record, body)
        if self.path.startswith("/hooks/"):
            return self.webhook(record, body)
        self.reply(404, {"error": "no such route"})

    def expect(self, record, condition, message):
        if not condition:
            record["violations"].append(message)

    def twilio(self, record, account_sid, body):
        args = self.state.args
        expected_auth = "Basic " + base64.b64encode(("%s:%s" % (args.twilio_sid, args.twilio_token)).encode()).decode()
        self.expect(record, account_sid == args.twilio_sid, "account SID in the path")
        if self.headers.get("Authorization") != expected_auth:
            return self.reply(401, {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
        self.expect(record, self.headers.get("Content-Type") == "application/x-www-form-urlencoded", "Content-Type form-urlencoded")
        token = self.headers.get("I-Twilio-Idempotency-Token")
        self.expect(record, bool(token), "I-Twilio-Idempotency-Token present")
        pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
        keys = [key for key, _ in pairs]
        allowed = [["To", "From", "Body"], ["To", "MessagingServiceSid", "Body"],
                   ["To", "From", "Body", "StatusCallback"], ["To", "MessagingServiceSid", "Body", "StatusCallback"]]
        self.expect(record, keys in allowed, "form fields in order To, From|MessagingServiceSid, Body[, StatusCallback]: got %s" % keys)
        self.expect(record, form_serialize(pairs).encode() == body, "application/x-www-form-urlencoded serialization (WHATWG)")
        fields = dict(pairs)
        to = fields.get("To", "")
        self.expect(record, E164.match(to) is not None, "To is E.164")
        if to == "+15005550001":
            return self.reply(400, {"code": 21211, "message": "The 'To' number %s is not a valid phone number." % to,
                                    "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
        with self.state.lock:
            sid = self.state.twilio_sids.setdefault(token, "SM" + hashlib.md5((token or "").encode()).hexdigest())
        self.reply(201, {"sid": sid, "status": "queued", "to": to, "from": fields.get("From"), "body": fields.get("Body"),
                         "account_sid": account_sid, "num_segments": "1", "error_code": None, "error_message": None})

    def token(self, record, body):
        pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        fields = dict(pairs)
        self.expect(record, [k for k, _ in pairs] == ["grant_type", "assertion"], "token form fields")
        self.expect(record, fields.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer", "JWT bearer grant")
        try:
            header, claims, _ = fields.get("assertion", "").split(".")
            header = json.loads(b64url_decode(header))
            claims = json.loads(b64url_decode(claims))
            self.expect(record, header.get("alg") == "RS256", "RS256 assertion")
            self.expect(record, claims.get("scope") == "https://www.googleapis.com/auth/firebase.messaging", "FCM scope")
            self.expect(record, claims.get("exp", 0) - claims.get("iat", 0) == 3600, "one-hour assertion")
        except Exception as error:  # noqa: BLE001 - any malformed assertion is a violation
            record["violations"].append("malformed assertion: %s" % error)
        with self.state.lock:
            token = "ya29.standin-%d" % (len(self.state.issued_tokens) + 1)
            self.state.issued_tokens.add(token)
        self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def fcm(self, record, body):
        auth = self.headers.get("Authorization", "")
        with self.state.lock:
            valid = auth == "Bearer " + (self.state.args.fcm_token or "") or auth[len("Bearer "):] in self.state.issued_tokens
        if not valid:
            return self.reply(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
        self.expect(record, self.headers.get("Content-Type") == "application/json", "Content-Type application/json")
        try:
            document = json.loads(body)
        except ValueError:
            record["violations"].append("body is not JSON")
            return self.reply(400, {"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}})
        message = document.get("message", {}) if isinstance(document, dict) else {}
        self.expect(record, list(document.keys()) == ["message"], "only a message key at the top")
        self.expect(record, set(message.keys()) <= {"token", "notification", "data"}, "message keys")
        self.expect(record, set(message.get("notification", {}).keys()) == {"title", "body"}, "notification title and body")
        data = message.get("data", {})
        self.expect(record, all(isinstance(v, str) for v in data.values()), "data values are strings")
        self.expect(record, "data" not in message or data != {}, "no empty data object")
        token = message.get("token", "")
        if token.startswith("unregistered"):
            return self.reply(404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                                              "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})
        if token.startswith("malformed"):
            return self.reply(400, {"error": {"code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT",
                                              "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
                                                          {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}]}})
        self.reply(200, {"name": "projects/%s/messages/%d" % (self.path.split("/")[3], len(self.state.requests))})

    def webhook(self, record, body):
        secret = self.state.args.webhook_secret.encode()
        header = self.headers.get("Cairn-Signature", "")
        items = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        timestamp = items.get("t", "")
        expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        signatures = [value for key, value in (item.split("=", 1) for item in header.split(",") if "=" in item) if key == "v1"]
        self.expect(record, timestamp.isdigit(), "signature timestamp")
        self.expect(record, any(hmac.compare_digest(expected, s) for s in signatures), "Cairn-Signature v1 matches HMAC-SHA256(t.body)")
        self.expect(record, self.headers.get("Content-Type") == "application/json", "Content-Type application/json")
        self.expect(record, bool(self.headers.get("Idempotency-Key")), "Idempotency-Key present")
        if record["violations"]:
            return self.reply(401, {"error": "bad signature"})
        if self.path == "/hooks/crm":
            return self.reply(200, {"id": "crm-123", "customer": {"tier": "gold", "score": 42}})
        if self.path == "/hooks/reject":
            return self.reply(422, {"error": "unknown customer"})
        self.reply(204)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--twilio-sid", default="AC" + "0" * 32)
    parser.add_argument("--twilio-token", default="twilio-test-token")
    parser.add_argument("--fcm-token", default="fcm-static-token")
    parser.add_argument("--webhook-secret", default="webhook-secret-0123456789")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("READY %d" % server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
