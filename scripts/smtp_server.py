#!/usr/bin/env python3
"""A real SMTP server for quizmail's interop tests, built on aiosmtpd.

Modes (--mode):
  starttls   plaintext greeting, STARTTLS offered and REQUIRED before anything else
             (RFC 3207); AUTH offered only after TLS.
  implicit   TLS from the first byte (RFC 8314 "submissions"); AUTH offered.
  plain      no TLS at all; AUTH offered in the clear (for the "auto picks only
             CRAM-MD5 over plaintext" rule and for "STARTTLS required but not offered").

AUTH mechanisms (RFC 4954): PLAIN (RFC 4616) and LOGIN are aiosmtpd's built-ins; CRAM-MD5
(RFC 2195) is implemented here. --mechs limits what is offered.

Every accepted message is stored in --store as <n>.eml (the DATA content exactly as received,
after dot-unstuffing, RFC 5321 4.5.2) and <n>.json (envelope, options, authenticated user and
mechanism, EHLO name). <n>.json is written last, atomically: its presence means the message is
complete. "connection" in <n>.json numbers the TCP connection the message came on (1, 2, ...
in the order the server accepted them; STARTTLS does not start a new one), so a test can count
connections. Every AUTH command is appended to <store>/auth.jsonl (mechanism, EHLO name, outcome;
never credentials), so a test can prove that no AUTH was attempted.

When listening, the server writes {"port": N, "pid": P} atomically to --ready-file.
"""

import argparse
import asyncio
import base64
import hmac
import json
import logging
import os
import secrets
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism, syntax

ALL_MECHS = ("PLAIN", "LOGIN", "CRAM-MD5")


def write_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Store:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.count = 0
        self.connections = 0

    def next_connection(self):
        self.connections += 1
        return self.connections

    def save(self, envelope, session, tls_version, connection):
        self.count += 1
        n = self.count
        write_atomic(os.path.join(self.directory, f"{n}.eml"), envelope.original_content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "auth_user": _text(getattr(session, "login_data", None)),
            "auth_mechanism": getattr(session, "quiz_auth_mechanism", None),
            "ehlo": session.host_name,
            "connection": connection,
            "tls_version": tls_version,
            "size": len(envelope.original_content),
        }
        write_atomic(os.path.join(self.directory, f"{n}.json"),
                     json.dumps(meta, indent=1).encode())
        return n

    def record_auth(self, entry):
        with open(os.path.join(self.directory, "auth.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")


def _tls_version(server):
    """The TLS version of the connection, for STARTTLS and implicit TLS alike (None: plaintext)."""
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.version() if ssl_object is not None else None


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class Handler:
    """Envelope policy, storage and the CRAM-MD5 mechanism."""

    def __init__(self, store, user, password, reject, hostname):
        self.store = store
        self.user = user.encode()
        self.password = password.encode()
        self.reject = {r.lower() for r in reject}
        self.hostname = hostname

    def check(self, mechanism, session, login, password):
        ok = hmac.compare_digest(login, self.user) and hmac.compare_digest(password, self.password)
        if ok:
            session.quiz_auth_mechanism = mechanism
        return ok

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        n = self.store.save(envelope, session, _tls_version(server), server.quiz_connection)
        return f"250 2.0.0 Ok: queued as Q{n:08d}"

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server, args):
        """RFC 2195: challenge is a unique msg-id; response is "user SP hex(HMAC-MD5(pw, chal))"."""
        if len(args) != 1:
            # CRAM-MD5 has no initial response (RFC 4954 section 4).
            await server.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**10)}.{int(time.time())}@{self.hostname}>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=True)  # '*' or bad base64, already answered
        login, sep, digest = response.rpartition(b" ")
        if not sep:
            await server.push("501 5.5.2 Malformed CRAM-MD5 response")
            return AuthResult(success=False, handled=True)
        expected = hmac.new(self.password, challenge, "md5").hexdigest().encode()
        user_ok = hmac.compare_digest(login, self.user)
        digest_ok = hmac.compare_digest(digest.lower(), expected)
        if user_ok and digest_ok:
            server.session.quiz_auth_mechanism = "CRAM-MD5"
            return AuthResult(success=True, auth_data=LoginPassword(login, b""))
        return AuthResult(success=False, handled=False)


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, recording every AUTH command (mechanism and outcome only)."""

    def __init__(self, *args, store, **kwargs):
        super().__init__(*args, **kwargs)
        self.quiz_store = store
        # One protocol instance per TCP connection (the factory runs once per accept); the
        # session object, by contrast, is replaced after STARTTLS (RFC 3207 section 4.2).
        self.quiz_connection = store.next_connection()

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg):
        before = bool(self.session and self.session.authenticated)
        await super().smtp_AUTH(arg)
        self.quiz_store.record_auth({
            "mechanism": (arg.split() or [""])[0].upper(),
            "ehlo": self.session.host_name if self.session else None,
            "tls_version": _tls_version(self),
            "success": bool(self.session and self.session.authenticated and not before),
        })


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("starttls", "implicit", "plain"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port (reported in --ready-file)")
    p.add_argument("--cert", help="server certificate chain (PEM); needed for starttls/implicit")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--user", required=True)
    p.add_argument("--password", default=os.environ.get("SMTP_SERVER_PASSWORD"),
                   help="default: $SMTP_SERVER_PASSWORD")
    p.add_argument("--mechs", default=",".join(ALL_MECHS),
                   help="comma-separated AUTH mechanisms to offer (of PLAIN,LOGIN,CRAM-MD5)")
    p.add_argument("--reject-rcpt", action="append", default=[],
                   help="answer RCPT for this address with 550 5.1.1 (repeatable)")
    p.add_argument("--store", required=True, help="directory for <n>.eml, <n>.json, auth.jsonl")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--log-file", required=True)
    p.add_argument("--hostname", default="localhost")
    a = p.parse_args()
    if not a.password:
        p.error("--password or $SMTP_SERVER_PASSWORD is required")
    mechs = {m.strip().upper() for m in a.mechs.split(",") if m.strip()}
    if not mechs <= set(ALL_MECHS):
        p.error(f"unknown mechanism in --mechs: {sorted(mechs - set(ALL_MECHS))}")
    if a.mode != "plain" and not (a.cert and a.key):
        p.error(f"--mode {a.mode} needs --cert and --key")

    logging.basicConfig(filename=a.log_file, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    store = Store(a.store)
    handler = Handler(store, a.user, a.password, a.reject_rcpt, a.hostname)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = handler.check(mechanism, session, auth_data.login, auth_data.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    smtp_kwargs = dict(
        hostname=a.hostname,
        authenticator=authenticator,
        auth_exclude_mechanism=[m for m in ALL_MECHS if m not in mechs],
        # starttls: AUTH only after TLS. implicit: the whole session is TLS, but aiosmtpd only
        # counts its own STARTTLS layer as TLS, so the check is off. plain: AUTH in the clear on
        # purpose, to test the client's refusal to send PLAIN/LOGIN unencrypted.
        auth_require_tls=(a.mode == "starttls"),
        require_starttls=(a.mode == "starttls"),
        tls_context=ctx if a.mode == "starttls" else None,
    )

    def factory():
        return RecordingSMTP(handler, store=store, **smtp_kwargs)

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, host=a.host, port=a.port,
            ssl=ctx if a.mode == "implicit" else None)
        port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logging.info("listening on %s:%d mode=%s mechs=%s", a.host, port, a.mode, sorted(mechs))
        write_atomic(a.ready_file, json.dumps({"port": port, "pid": os.getpid()}).encode())
        await stop.wait()
        server.close()
        await server.wait_closed()
        logging.info("stopped")

    asyncio.run(run())


if __name__ == "__main__":
    main()
