"""A real SMTP server for the tests: aiosmtpd on loopback, storing every message in a Maildir.

usage: smtp_server.py PORT MAILDIR   (prints "READY PORT" once it accepts connections)
"""
import signal
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

port, maildir = int(sys.argv[1]), sys.argv[2]
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port)
controller.start()  # returns once the server answers
print(f"READY {port}", flush=True)
signal.pause()
