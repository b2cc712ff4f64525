from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone

from stall.core.ids import PrefixedIdField


class UserManager(BaseUserManager):
    def create_user(self, email: str, password: str | None = None, **extra):
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        return self.create_user(email, password, is_staff=True, is_superuser=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A creator (or operator) who logs in with an email and a password. Buyers do not need one."""

    id = PrefixedIdField(prefix="usr")
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=120, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    def __str__(self) -> str:
        return self.email


class Buyer(models.Model):
    """Someone who buys, known by email and signed in by magic link; no password.

    Created at their first purchase or first sign-in. Wallets, tabs and allowances belong to a
    buyer, so they work in every store of this Stall.
    """

    id = PrefixedIdField(prefix="byr")
    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class MagicLinkUse(models.Model):
    """A sign-in link that has signed someone in, by its nonce: it does not sign anyone in again.

    Kept until the link would have expired anyway (accounts.tasks.magic_link_uses_prune)."""

    nonce = models.CharField(max_length=32, primary_key=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)


class TwoFactor(models.Model):
    """A creator's TOTP authenticator: the shared secret, on once confirmed by a code from the app.

    ``last_used_step`` is the 30-second time step of the last code accepted, so a code seen over a
    shoulder (or replayed from a proxy) cannot sign in again while it is still valid."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="two_factor")
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_step = models.BigIntegerField(default=0)


class RecoveryCode(models.Model):
    """One single-use code for signing in without the authenticator app; only its salted hash is kept."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=128)
    used_at = models.DateTimeField(null=True, blank=True)


class Customer(models.Model):
    """Someone who bought from (or signed up to) a store, known by email; one row per store.

    Lives here, beside ``Buyer``, because orders, wallets and memberships all point at it, and the
    audience app that reads it sits above them. The table keeps its first name
    (``audience_customer``): the model moved, the rows did not. ``store`` is named by string, as
    other models here name rows of apps above them, so accounts imports nothing from stores."""

    id = PrefixedIdField(prefix="cus")
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="customers")
    email = models.EmailField()
    name = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audience_customer"
        constraints = [models.UniqueConstraint(fields=["store", "email"], name="audience_customer_unique_email")]

    def __str__(self) -> str:
        return self.email
