from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from huey.contrib.djhuey import db_task

from stall.accounts.services import buyer_magic_link
from stall.core.email import email_send


@db_task()
def reader_sign_in_link_send(email: str, next_path: str, store_name: str, language: str = settings.LANGUAGE_CODE) -> None:
    """A magic link that signs the reader in and brings them back to the page they were on, in the
    language of the page they asked from."""
    with translation.override(language):
        email_send(
            to=email,
            subject=_("Sign in to read on %(store)s") % {"store": store_name},
            template="content/email/sign_in",
            context={"sign_in_url": buyer_magic_link(email=email, next_path=next_path), "store_name": store_name},
        )
