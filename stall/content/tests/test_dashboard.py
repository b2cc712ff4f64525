"""The creator's pages for posts and tips (stall/dashboard/posts.py) and the order list's kinds."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from stall.content.models import Post, TipJar
from stall.content.services import post_unlock, tip_jar_update, tip_send
from stall.testing import StoreFactory, buy

from .conftest import BODY, make_post


@pytest.fixture
def dash(client, creator):
    client.force_login(creator)
    return client


def text(response) -> str:
    return response.content.decode()


def test_write_a_post_with_a_price_typed_as_text(dash, store):
    """The new-post form parses "0.25" and saves a published 25¢ post, then opens it for editing."""
    response = dash.post(f"/dashboard/{store.slug}/posts/new/", {
        "title": "Field notes", "slug": "", "body": BODY, "amount": "0.25", "status": "published",
    })
    post = Post.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/dashboard/{store.slug}/posts/{post.pk}/")
    assert (post.title, post.amount, post.status, post.body) == ("Field notes", 25, "published", BODY)
    page = text(dash.get(response["Location"]))
    assert "Free preview" in page and "A second free paragraph." in page
    assert "&lt;!-- more --&gt;" in page  # the help text names the marker


def test_a_bad_price_is_shown_next_to_the_field(dash, store):
    """"abc" is refused with parse_amount's message and nothing is saved."""
    response = dash.post(f"/dashboard/{store.slug}/posts/new/", {"title": "X", "amount": "abc", "status": "draft"})
    assert response.status_code == 400 and "“abc” is not an amount." in text(response)
    assert Post.objects.count() == 0


def test_edit_and_publish(dash, store):
    """Saving changes the text; Publish publishes a draft."""
    post = make_post(store, status="draft")
    response = dash.post(f"/dashboard/{store.slug}/posts/{post.pk}/", {
        "title": "Renamed", "slug": post.slug, "body": "New.\n\n<!-- more -->\n\nPaid.", "amount": "1", "status": "draft",
    })
    assert response.status_code == 302
    post.refresh_from_db()
    assert (post.title, post.amount, post.body) == ("Renamed", 100, "New.\n\n<!-- more -->\n\nPaid.")
    assert dash.post(f"/dashboard/{store.slug}/posts/{post.pk}/publish/").status_code == 302
    post.refresh_from_db()
    assert post.status == "published" and post.published_at is not None


def test_upload_an_image_into_the_body(dash, store, settings, tmp_path):
    """An uploaded PNG is added to the end of the body as Markdown; a text file is refused."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                          "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"}}}
    post = make_post(store)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, "PNG")
    upload = SimpleUploadedFile("chart.png", buffer.getvalue(), content_type="image/png")
    response = dash.post(f"/dashboard/{store.slug}/posts/{post.pk}/images/", {"image": upload, "alt": "A chart"})
    assert response.status_code == 302
    post.refresh_from_db()
    assert post.body.startswith(BODY + "\n\n![A chart](/media/posts/")
    bad = SimpleUploadedFile("notes.png", b"plain text", content_type="image/png")
    response = dash.post(f"/dashboard/{store.slug}/posts/{post.pk}/images/", {"image": bad})
    assert response.status_code == 400 and "That file is not an image Stall can read." in text(response)


def test_the_posts_list_counts_unlocks(dash, store, funded):
    """The list shows each post with its price and how many readers unlocked it."""
    post = make_post(store)
    make_post(store, title="Free one", amount=0)
    post_unlock(post=post, method="wallet", buyer=funded)
    page = text(dash.get(f"/dashboard/{store.slug}/posts/"))
    assert "Field notes" in page and "$0.25" in page and "Free one" in page
    assert '<td class="c-files num">1<span class="show-sm"> unlock</span></td>' in page


def test_set_up_the_tip_jar(dash, store):
    """The tips page turns the jar on with presets typed as text and a goal."""
    response = dash.post(f"/dashboard/{store.slug}/tips/", {
        "enabled": "on", "title": "Buy me a coffee", "presets": "2, 4.50 10", "minimum": "1", "maximum": "100",
        "goal_amount": "250", "goal_title": "New lens", "show_supporters": "on",
    })
    assert response.status_code == 302
    jar = TipJar.objects.get(store=store)
    assert (jar.enabled, jar.title, jar.presets, jar.minimum, jar.maximum, jar.goal_amount, jar.goal_title) == (
        True, "Buy me a coffee", [200, 450, 1000], 100, 10000, 25000, "New lens")


def test_bad_tip_jar_settings_are_shown(dash, store):
    """A preset outside the limits and a junk amount are shown on the form; nothing is saved."""
    response = dash.post(f"/dashboard/{store.slug}/tips/", {"enabled": "on", "title": "Tips", "presets": "0.10", "minimum": "1", "maximum": "5"})
    assert response.status_code == 400 and "Each preset must be between $1.00 and $5.00." in text(response)
    response = dash.post(f"/dashboard/{store.slug}/tips/", {"enabled": "on", "title": "Tips", "presets": "one", "minimum": "1", "maximum": "5"})
    assert response.status_code == 400 and "“one” is not an amount." in text(response)
    assert TipJar.objects.count() == 0


def test_the_tips_page_lists_tips_with_their_messages(dash, store, funded):
    """Private tips show to the creator too, marked private."""
    tip_jar_update(store=store, enabled=True)
    tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Ana", message="Public thanks", public=True)
    tip_send(store=store, amount=200, method="wallet", buyer=funded, message="Quiet thanks")
    page = text(dash.get(f"/dashboard/{store.slug}/tips/"))
    assert "Public thanks" in page and "Quiet thanks" in page and "private" in page and "$3.00 in tips so far" in page


def test_the_order_list_shows_what_each_order_was(dash, store, product, funded):
    """A download, a post unlock and a tip are told apart in the order list."""
    post = make_post(store)
    tip_jar_update(store=store, enabled=True)
    buy(store=store, product=product)
    post_unlock(post=post, method="wallet", buyer=funded)
    tip_send(store=store, amount=100, method="wallet", buyer=funded)
    page = text(dash.get(f"/dashboard/{store.slug}/orders/"))
    kinds = [k for k in ("Download", "Post unlock", "Tip") if f'<td class="c-kind">{k}</td>' in page]
    assert kinds == ["Download", "Post unlock", "Tip"]


def test_another_creators_posts_and_tips_are_not_found(client, store, other_creator_store):
    """Every post and tips page of another creator's store answers 404, and their post is unchanged."""
    other_user, other_store = other_creator_store
    post = make_post(store)
    client.force_login(other_user)
    base = f"/dashboard/{store.slug}"
    for method, path in [("get", f"{base}/posts/"), ("get", f"{base}/posts/new/"), ("get", f"{base}/posts/{post.pk}/"),
                         ("post", f"{base}/posts/{post.pk}/"), ("post", f"{base}/posts/{post.pk}/publish/"),
                         ("post", f"{base}/posts/{post.pk}/images/"), ("get", f"{base}/tips/"), ("post", f"{base}/tips/"),
                         ("get", f"/dashboard/{other_store.slug}/posts/{post.pk}/"),
                         ("post", f"/dashboard/{other_store.slug}/posts/{post.pk}/publish/")]:
        assert getattr(client, method)(path, {"title": "Stolen"}).status_code == 404, path
    post.refresh_from_db()
    assert post.title == "Field notes"


@pytest.fixture
def other_creator_store(db):
    from stall.testing import UserFactory

    user = UserFactory()
    return user, StoreFactory(owner=user)
