from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Staff log in with username and password; shoppers are created by WeChat login.

    A shopper's ``openid`` is what the mini-program pays with, so it is the identity
    every order is bound to (docs/INVARIANTS.md §1). ``session_key`` is WeChat's key for this
    user's encrypted mini-program data: it never leaves the server (no serializer,
    no admin field, no log line includes it).
    """

    openid = models.CharField(
        _("WeChat openid"),
        max_length=128,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The shopper's id in this mini-program. Empty for staff accounts."),
    )
    unionid = models.CharField(
        _("WeChat unionid"),
        max_length=128,
        blank=True,
        default="",
        help_text=_("Same person across the owner's WeChat apps, when they are linked."),
    )
    session_key = models.CharField(max_length=128, blank=True, default="", editable=False)
    last_wechat_login = models.DateTimeField(
        _("last WeChat login"),
        null=True,
        blank=True,
        help_text=_("When the shopper last logged in from the mini-program."),
    )

    # Part of every bearer token; bumping it ("Log out everywhere" in admin) makes every
    # token issued before unusable at once, without touching anyone else's.
    token_version = models.PositiveIntegerField(
        _("token version"),
        default=0,
        editable=False,
        help_text=_("Raised to revoke every bearer token issued to this user so far."),
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.openid or self.username
