"""Email over real SMTP: a local aiosmtpd server receives what Stall sends."""

import email
import email.policy
import re
import socket
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from stall.core.email import email_send
from stall.testing import buy, product_with_file

pytestmark = pytest.mark.django_db


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings):
    """A real SMTP server on a free localhost port, with Django pointed at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    settings.DEFAULT_FROM_EMAIL = "Stall <shop@example.com>"
    try:
        yield inbox
    finally:
        controller.stop()


def parse(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def test_receipt_arrives_over_smtp_with_a_working_library_link(smtp, store, client, django_capture_on_commit_callbacks):
    """A purchase's receipt is delivered by SMTP to the buyer, and its link opens the buyer's library."""
    product = product_with_file(store=store, name="Zine", amount=300)
    with django_capture_on_commit_callbacks(execute=True):
        order = buy(store=store, product=product, email="reader@example.com")

    assert len(smtp.envelopes) == 1
    envelope = smtp.envelopes[0]
    assert envelope.rcpt_tos == ["reader@example.com"]
    assert envelope.mail_from == "shop@example.com"
    message = parse(envelope)
    assert message["From"] == "Stall <shop@example.com>"
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == f"Your receipt from {store.name}"
    plain = message.get_body(preferencelist=("plain",)).get_content()
    rich = message.get_body(preferencelist=("html",)).get_content()
    assert f"Order {order.pk}" in plain
    link = re.search(r"(http://\S+/library/enter/\S+/)", plain).group(1)
    assert f'href="{link}"' in rich

    response = client.get(urlsplit(link).path, follow=True)
    assert response.redirect_chain == [("/library/", 302)]
    assert "Bought with reader@example.com" in response.content.decode()
    assert "Zine" in response.content.decode()


def test_reply_to_is_the_stores_support_address(smtp, store):
    """A store's support address becomes the Reply-To, so a buyer's reply reaches the creator."""
    email_send(
        to="reader@example.com", subject="Hello", template="orders/email/library_link",
        context={"library_url": "http://127.0.0.1:8000/library/"}, reply_to="help@example.com",
    )
    message = parse(smtp.envelopes[0])
    assert (message["Subject"], message["Reply-To"]) == ("Hello", "help@example.com")
    assert "http://127.0.0.1:8000/library/" in message.get_body(preferencelist=("plain",)).get_content()
