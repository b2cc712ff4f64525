"""Sending email through Django's backends: the console by default, SMTP when EMAIL_URL says so."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def email_send(*, to: str, subject: str, template: str, context: dict, reply_to: str | None = None) -> None:
    """Render ``template``.txt and .html with ``context`` and send one message."""
    context = {"base_url": settings.BASE_URL, **context}
    text = render_to_string(f"{template}.txt", context)
    html = render_to_string(f"{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
        reply_to=[reply_to] if reply_to else None,
    )
    message.attach_alternative(html, "text/html")
    message.send()
