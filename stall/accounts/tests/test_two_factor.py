"""Two-factor sign-in for creators (issue #13): turning it on, the code step of logging in,
recovery codes, turning it off, and the limits on guessing codes."""

import re
from datetime import UTC, datetime
from html import unescape

import pyotp
import pytest
import time_machine

from stall.accounts.models import RecoveryCode, TwoFactor
from stall.accounts.two_factor import (
    two_factor_confirm,
    two_factor_qr_svg,
    two_factor_start,
    two_factor_uri,
)
from stall.testing import FACTORY_PASSWORD, UserFactory
from stall.wallets.tests.test_page_ids import duplicate_ids

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # a boundary of 30-second steps and of the limits' windows
ADDRESS = "198.51.100.1"
WRONG = "That code is not right. Enter the 6-digit code your authenticator app shows now, or an unused recovery code."
USED = "That code has already been used. Wait for the next one in your authenticator app."
LIMITED = "Too many code attempts. Try again in 15 minutes."
SETTINGS = "/dashboard/account/two-factor/"


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def two_factor(creator, clock):
    """The creator with two-factor on (confirmed a step ago); the recovery codes they were shown."""
    secret = two_factor_start(user=creator).secret
    codes = two_factor_confirm(user=creator, code=pyotp.TOTP(secret).now())
    clock.shift(30)  # the confirming code is used up; the app now shows the next one
    return codes


def app_code(user) -> str:
    """What the creator's authenticator app shows now."""
    return pyotp.TOTP(TwoFactor.objects.get(user=user).secret).now()


def text(response) -> str:
    return unescape(response.content.decode())


def log_in(client, user, next_path=""):
    path = f"/login/?next={next_path}" if next_path else "/login/"
    return client.post(path, {"username": user.email, "password": FACTORY_PASSWORD}, REMOTE_ADDR=ADDRESS)


def enter(client, code, address=ADDRESS):
    return client.post("/login/code/", {"code": code}, REMOTE_ADDR=address)


def enter_recovery(client, code):
    return client.post("/login/code/", {"recovery-code": code}, REMOTE_ADDR=ADDRESS)


def logged_in_as(client):
    return client.session.get("_auth_user_id")


# --- Turning it on --------------------------------------------------------------------------


def test_turning_on_shows_a_qr_code_and_the_key_and_wants_a_right_code(client, creator, clock):
    client.force_login(creator)
    page = client.get(SETTINGS)
    assert "Set up two-factor sign-in" in text(page)

    assert client.post(SETTINGS, {"action": "start"})["Location"] == SETTINGS
    secret = TwoFactor.objects.get(user=creator).secret
    page = text(client.get(SETTINGS))
    svg = re.search(r'<svg viewBox="[\d ]+" class="qr">(.*?)</svg>', page, re.S)
    assert svg and "<title>QR code for your authenticator app</title>" in svg[1]
    assert "href" not in svg[1] and "url(" not in svg[1]  # drawn in the page, nothing fetched
    uri = f"otpauth://totp/Stall:{creator.email.replace('@', '%40')}?secret={secret}&issuer=Stall"
    assert two_factor_uri(TwoFactor.objects.get(user=creator)) == uri
    assert two_factor_qr_svg(uri) in page  # the QR code is of that link
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in page

    totp = pyotp.TOTP(secret)
    wrong = client.post(SETTINGS, {"action": "confirm", "confirm-code": totp.at(T0.timestamp() - 60)})
    assert wrong.status_code == 400
    assert "That code is not right." in text(wrong)
    assert TwoFactor.objects.get(user=creator).confirmed_at is None
    assert not RecoveryCode.objects.exists()

    shown = client.post(SETTINGS, {"action": "confirm", "confirm-code": totp.now()})
    assert shown.status_code == 200
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", text(shown))
    assert len(set(codes)) == 10
    assert "Two-factor sign-in is on." in text(shown)
    assert TwoFactor.objects.get(user=creator).confirmed_at is not None
    hashes = list(RecoveryCode.objects.filter(user=creator).values_list("code_hash", flat=True))
    assert len(hashes) == 10
    assert not any(code.replace("-", "") in stored for code in codes for stored in hashes)

    page = text(client.get(SETTINGS))
    assert "On</span> since" in page and "10 unused recovery codes left." in page
    assert not any(code in page for code in codes)  # shown once only


def test_a_setup_never_confirmed_changes_nothing_at_log_in(client, creator, clock):
    two_factor_start(user=creator)
    response = log_in(client, creator)
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert logged_in_as(client) == creator.pk


# --- Logging in -----------------------------------------------------------------------------


def test_log_in_with_two_factor_on_waits_for_the_code(client, creator, two_factor):
    response = log_in(client, creator, next_path="/dashboard/new-store/")
    assert (response.status_code, response["Location"]) == (302, "/login/code/")
    assert logged_in_as(client) is None
    assert client.get("/dashboard/").status_code == 302  # not in yet
    page = client.get("/login/code/")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in text(page)

    response = enter(client, app_code(creator))
    assert (response.status_code, response["Location"]) == (302, "/dashboard/new-store/")
    assert logged_in_as(client) == creator.pk


def test_a_wrong_code_is_refused_with_a_clear_message(client, creator, two_factor):
    log_in(client, creator)
    response = enter(client, "000000" if app_code(creator) != "000000" else "111111")
    assert response.status_code == 400
    assert WRONG in text(response)
    assert logged_in_as(client) is None
    assert enter(client, "not a code").status_code == 400
    assert enter(client, app_code(creator)).status_code == 302


def test_the_previous_steps_code_is_accepted_and_older_ones_are_not(client, creator, two_factor, clock):
    totp = pyotp.TOTP(TwoFactor.objects.get(user=creator).secret)
    clock.shift(60)
    log_in(client, creator)
    assert WRONG in text(enter(client, totp.at(T0.timestamp())))  # two steps ago
    assert WRONG in text(enter(client, totp.at(T0.timestamp() + 120)))  # the next step's
    assert enter(client, totp.at(T0.timestamp() + 60)).status_code == 302  # the step before this one


def test_a_used_code_is_refused_when_replayed(client, creator, two_factor, clock):
    code = app_code(creator)
    log_in(client, creator)
    assert enter(client, code).status_code == 302

    other = type(client)()  # someone who saw the code typed
    log_in(other, creator)
    response = enter(other, code)
    assert response.status_code == 400
    assert USED in text(response)
    assert logged_in_as(other) is None

    clock.shift(30)  # the same code is still valid as the previous step's, and still used
    assert USED in text(enter(other, code))
    assert enter(other, app_code(creator)).status_code == 302


def test_a_recovery_code_logs_in_once(client, creator, two_factor):
    log_in(client, creator)
    response = enter_recovery(client, "  " + two_factor[3].upper() + " ")
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert logged_in_as(client) == creator.pk
    assert RecoveryCode.objects.filter(user=creator, used_at__isnull=False).count() == 1

    other = type(client)()
    log_in(other, creator)
    response = enter_recovery(other, two_factor[3])
    assert response.status_code == 400 and WRONG in text(response)
    assert "<details open>" in text(response)
    assert enter(other, two_factor[4]).status_code == 302  # the code field takes one too


def test_the_waiting_log_in_expires_after_five_minutes(client, creator, two_factor, clock):
    log_in(client, creator)
    clock.shift(299)
    assert client.get("/login/code/").status_code == 200
    clock.shift(2)
    response = enter(client, app_code(creator))
    assert (response.status_code, response["Location"]) == (302, "/login/")
    assert logged_in_as(client) is None
    assert "Your log-in waited too long for its code" in text(client.get("/login/"))
    assert "two_factor_pending" not in client.session


def test_the_code_step_needs_a_password_first(client, creator, two_factor):
    response = enter(client, app_code(creator))
    assert (response.status_code, response["Location"]) == (302, "/login/")
    assert logged_in_as(client) is None


def test_an_account_without_two_factor_logs_in_as_before(client, creator):
    response = log_in(client, creator)
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert logged_in_as(client) == creator.pk


# --- Limits on guessing ---------------------------------------------------------------------


def test_guessing_codes_is_stopped_per_account(client, creator, two_factor):
    """Ten wrong codes (the default limit), from any addresses, then even the right one is refused."""
    log_in(client, creator)
    right = app_code(creator)
    wrong = "000000" if right != "000000" else "111111"
    assert [enter(client, wrong, address=f"198.51.100.{n}").status_code for n in range(10)] == [400] * 10
    response = enter(client, right, address="198.51.100.99")
    assert response.status_code == 429
    assert response["Retry-After"] == "870"  # the 15-minute window began 30 s before
    assert "Too many code attempts. Try again in 15 minutes." in text(response)
    assert logged_in_as(client) is None
    assert enter_recovery(client, two_factor[0]).status_code == 429
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 0


def test_guessing_codes_is_stopped_per_address_across_accounts(client, settings, clock):
    settings.STALL_LIMITS = {**settings.STALL_LIMITS, "two_factor_address": "3/15m"}
    users = [UserFactory() for _ in range(4)]
    for user in users:
        two_factor_confirm(user=user, code=pyotp.TOTP(two_factor_start(user=user).secret).now())
    clock.shift(30)
    for user in users[:3]:
        log_in(client, user)
        assert enter(client, "000000" if app_code(user) != "000000" else "111111").status_code == 400
    log_in(client, users[3])
    assert enter(client, app_code(users[3])).status_code == 429
    assert enter(client, app_code(users[3]), address="198.51.100.2").status_code == 302


# --- Settings: recovery codes and turning it off --------------------------------------------


def test_new_recovery_codes_need_a_code_and_replace_the_old(client, creator, two_factor):
    client.force_login(creator)
    refused = client.post(SETTINGS, {"action": "recovery_codes", "recovery_codes-code": "000000"})
    assert refused.status_code == 400 and WRONG in text(refused)
    response = client.post(SETTINGS, {"action": "recovery_codes", "recovery_codes-code": app_code(creator)})
    assert response.status_code == 200
    new = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", text(response))
    assert len(new) == 10 and not set(new) & set(two_factor)

    other = type(client)()
    log_in(other, creator)
    assert WRONG in text(enter_recovery(other, two_factor[0]))
    assert enter_recovery(other, new[0]).status_code == 302


def test_turning_off_needs_the_password_and_a_code(client, creator, two_factor):
    client.force_login(creator)
    response = client.post(SETTINGS, {"action": "off", "off-password": FACTORY_PASSWORD, "off-code": "000000"})
    assert response.status_code == 400 and WRONG in text(response)
    response = client.post(SETTINGS, {"action": "off", "off-password": "wrong", "off-code": app_code(creator)})
    assert response.status_code == 400 and "That password is not right." in text(response)
    assert TwoFactor.objects.filter(user=creator).exists()

    response = client.post(SETTINGS, {"action": "off", "off-password": FACTORY_PASSWORD, "off-code": two_factor[0]})
    assert response["Location"] == SETTINGS
    assert not TwoFactor.objects.filter(user=creator).exists() and not RecoveryCode.objects.exists()
    other = type(client)()
    assert log_in(other, creator)["Location"] == "/dashboard/"


def test_settings_code_attempts_count_against_the_limit(client, creator, two_factor):
    client.force_login(creator)
    for _ in range(10):
        client.post(SETTINGS, {"action": "recovery_codes", "recovery_codes-code": "000000"})
    response = client.post(SETTINGS, {"action": "off", "off-password": FACTORY_PASSWORD, "off-code": app_code(creator)})
    assert response.status_code == 429 and LIMITED in text(response)
    assert TwoFactor.objects.filter(user=creator).exists()


# --- Pages ----------------------------------------------------------------------------------


def test_two_factor_pages_repeat_no_element_id(client, creator, clock):
    client.force_login(creator)
    pages = {"settings, off": client.get(SETTINGS)}
    client.post(SETTINGS, {"action": "start"})
    pages["settings, setting up"] = client.get(SETTINGS)
    pages["settings, a wrong code"] = client.post(SETTINGS, {"action": "confirm", "confirm-code": "1"})
    pages["recovery codes"] = client.post(SETTINGS, {"action": "confirm", "confirm-code": app_code(creator)})
    pages["settings, on"] = client.get(SETTINGS)
    pages["settings, on, errors"] = client.post(SETTINGS, {"action": "off", "off-password": "x", "off-code": "1"})
    client.logout()
    clock.shift(30)
    log_in(client, creator)
    pages["code step"] = client.get("/login/code/")
    pages["code step, errors"] = enter_recovery(client, "nope")
    for name, page in pages.items():
        assert page.status_code in (200, 400), name
        assert duplicate_ids(page.content.decode()) == {}, name
