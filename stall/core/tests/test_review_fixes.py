"""Behaviours fixed after review: alignment in Markdown tables, the page language, customers by email."""

import pytest

from stall.accounts.models import Customer
from stall.core.markdown import render_markdown
from stall.testing import buy


def test_table_alignment_survives_and_other_styles_do_not():
    """Right-aligned columns keep text-align; any other CSS a creator sneaks in is dropped."""
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |")
    assert '<td style="text-align:right">2</td>' in html
    assert '<td style="color' not in render_markdown('<td style="color:red">x</td>')  # escaped, never a tag


@pytest.mark.django_db
def test_pages_declare_the_visitors_language(client, store):
    """A Korean visitor gets <html lang="ko">, an English one lang="en"."""
    assert '<html lang="ko">' in client.get(f"/s/{store.slug}/", headers={"Accept-Language": "ko"}).content.decode()
    assert '<html lang="en">' in client.get(f"/s/{store.slug}/", headers={"Accept-Language": "en"}).content.decode()


@pytest.mark.django_db
def test_one_customer_per_email_whatever_its_case(store, product):
    """Buying as Reader@Example.com and then reader@example.com is one customer of the store."""
    first = buy(store=store, product=product, email="Reader@Example.com")
    second = buy(store=store, product=product, email="reader@example.com")
    assert first.customer_id == second.customer_id
    assert Customer.objects.filter(store=store).count() == 1
