"""A real SMTP server for the tests: aiosmtpd on loopback, storing every message in a Maildir.

usage: smtp_server.py PORT MAILDIR USER PASSWORD   (prints "READY PORT" once it accepts connections)

It offers AUTH (PLAIN, LOGIN) without TLS and accepts only USER with PASSWORD; sending without
AUTH stays allowed. A message sent after AUTH is stored with "X-Authenticated-As: USER", so a test
can tell that the credentials reached the server (the password itself is never stored).
"""
import signal
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class Stored(Mailbox):
    def prepare_message(self, session, envelope):
        message = super().prepare_message(session, envelope)
        if session.authenticated:
            message["X-Authenticated-As"] = session.auth_data
        return message


controller = Controller(
    Stored(maildir),
    hostname="127.0.0.1",
    port=port,
    authenticator=authenticate,
    auth_require_tls=False,
)
controller.start()  # returns once the server answers
print(f"READY {port}", flush=True)
signal.pause()
