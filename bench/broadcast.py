#!/usr/bin/env python
"""Broadcast sending rate to a local SMTP sink, with a plain-smtplib baseline in the same run.

    .venv/bin/python bench/broadcast.py [-n 10000] [--batch 200] [--database-url postgres://…]

A fresh database (SQLite in a temporary data directory unless ``--database-url``), a store and
``n`` subscribed addresses (written in bulk), and an SMTP sink — aiosmtpd in a child process that
counts the messages it accepts. Then:

  baseline   the same message for each address, rendered once, sent with ``smtplib`` over one
             connection (``sendmail``): what the sink and the socket alone allow.
  stall      a broadcast to all subscribers: ``broadcast_schedule`` (send now: the delivery rows
             written), then ``broadcast_send`` — what the Huey task runs — until it is done: per
             recipient a claim UPDATE, the message rendered with its own unsubscribe link and
             RFC 8058 headers, sent over Django's SMTP backend (one connection per batch), and
             the sent UPDATE.

Prints messages/s for each, the ratio, and checks that the sink received each message once.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sink(port: int) -> None:
    """The child: accept mail on ``port``, print the count when told to stop (stdin closed)."""
    from aiosmtpd.controller import Controller

    class Counter:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Counter.count += len(envelope.rcpt_tos)
            return "250 OK"

    controller = Controller(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    print(Counter.count, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return sink(args.sink)

    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--sink", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"

    data_dir = tempfile.mkdtemp(prefix="stall-bench-broadcast-")
    os.environ.update(STALL_DATA_DIR=data_dir, EMAIL_URL=f"smtp://127.0.0.1:{port}", DJANGO_SETTINGS_MODULE="stall.settings",
                      STALL_BROADCAST_BATCH=str(args.batch))
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    if args.database_url:  # a clean schema in the given database
        with connection.cursor() as cur:
            cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)
    from huey.contrib.djhuey import HUEY

    HUEY.immediate = False  # the send is driven below, as the worker would run it
    from stall.accounts.models import Customer, User
    from stall.audience import broadcasts as bc
    from stall.audience.models import Subscriber, SubscriberSource, SubscriberStatus
    from stall.audience.selectors import broadcast_progress
    from stall.core.ids import new_id
    from stall.stores.models import Store

    owner = User.objects.create_user("bench@example.com", "x")
    store = Store.objects.create(owner=owner, slug="bench", name="Bench Press")
    emails = [f"reader{i:06d}@example.com" for i in range(args.n)]
    now = timezone.now()
    customers = [Customer(id=new_id("cus"), store=store, email=e) for e in emails]
    Customer.objects.bulk_create(customers, batch_size=2000)
    Subscriber.objects.bulk_create([Subscriber(store=store, email=c.email, customer=c, status=SubscriberStatus.SUBSCRIBED,
                                               source=SubscriberSource.IMPORT, confirmed_at=now) for c in customers], batch_size=2000)
    body = "Hello, reader.\n\nThe **summer** issue is out: [read it](https://example.com/summer).\n\n" + "A paragraph of news. " * 30
    broadcast = bc.broadcast_create(store=store, subject="The summer issue", body=body)

    # Baseline: one rendered message, smtplib, one connection.
    raw = bc._message(broadcast=broadcast, to=emails[0]).message().as_bytes(linesep="\r\n")
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for email in emails:
            smtp.sendmail("store@localhost", [email], raw)
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    bc.broadcast_schedule(broadcast=broadcast)
    written = time.perf_counter() - started
    while not bc.broadcast_send(broadcast_id=broadcast.pk, budget_seconds=50):
        pass
    stall = time.perf_counter() - started
    progress = broadcast_progress(broadcast=broadcast)
    child.stdin.close()
    received = int(child.stdout.readline())
    child.wait()

    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"broadcast to {args.n:,} subscribers on {db}, batch {args.batch}, local aiosmtpd sink")
    print(f"  baseline  smtplib, one rendered message, one connection: {baseline:6.2f} s  {args.n / baseline:8,.0f} msg/s")
    print(f"  stall     broadcast_schedule + broadcast_send:           {stall:6.2f} s  {args.n / stall:8,.0f} msg/s"
          f"  (recipients written in {written:.2f} s)")
    print(f"  ratio     stall / baseline = {baseline / stall:.2f}")
    print(f"  sink received {received:,} = {args.n:,} baseline + {received - args.n:,} broadcast; deliveries sent {progress['sent']:,}")
    assert received - args.n == args.n == progress["sent"], "each recipient once"


if __name__ == "__main__":
    main()
