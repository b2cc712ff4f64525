import re

import pyotp
import pytest
from playwright.sync_api import expect

from stall.accounts.models import TwoFactor
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_creator_turns_on_two_factor_on_a_phone_and_logs_in_with_a_recovery_code(live_server, phone, shot):
    """From the store's settings a creator sets up two-factor with the key shown (as an app would
    read the QR code), saves the recovery codes, and at the next log-in is asked for a code: a
    wrong one is refused with a message, a recovery code lets them in."""
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Beat Shop", slug="beats")
    page = phone.new_page()

    def log_in():
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Email").fill("maker@example.com")
        page.get_by_label("Password").fill(FACTORY_PASSWORD)
        page.get_by_role("button", name="Log in").click()

    log_in()
    expect(page).to_have_url(re.compile(rf"/dashboard/{store.slug}/$"))
    page.goto(f"{live_server.url}/dashboard/{store.slug}/settings/")
    page.get_by_role("link", name="Two-factor sign-in").first.click()
    shot(page, "1-off")
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    shot(page, "2-scan")
    secret = page.locator(".secret-key").inner_text().replace(" ", "")
    assert secret == TwoFactor.objects.get(user=creator).secret

    page.get_by_label("Code from your authenticator app").fill("12345")
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("That code is not right.")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Two-factor sign-in is on.")).to_be_visible()
    codes = page.locator(".recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    with page.expect_download() as download:
        page.get_by_role("link", name="Download codes").click()
    saved = download.value.path().read_text()
    assert all(code in saved for code in codes)
    shot(page, "3-recovery-codes")
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_text("10 unused recovery codes left.")).to_be_visible()
    shot(page, "4-on")

    page.get_by_role("button", name="Log out").click()
    log_in()
    expect(page).to_have_url(re.compile(r"/login/code/$"))
    page.get_by_label("Code from your authenticator app").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right.")
    shot(page, "5-wrong-code")
    page.get_by_text("No phone? Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Log in with a recovery code").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{store.slug}/$"))
