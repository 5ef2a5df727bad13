from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import User
from accounts.services import user_tokens_revoke


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    # session_key is not editable and listed nowhere: it never reaches a page (docs/INVARIANTS.md
    # §6.3).
    list_display = ["username", "openid", "is_staff", "last_wechat_login", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["username", "=openid", "=unionid", "email"]
    search_help_text = _("Username or email (contains), or an openid or unionid (exactly).")
    readonly_fields = ["openid", "unionid", "last_wechat_login", "last_login", "date_joined"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        (_("WeChat"), {"fields": ["openid", "unionid", "last_wechat_login"]}),
    ]
    actions = ["log_out_everywhere"]

    # For a lost phone or a leaked token: every token issued so far stops working at once.
    @admin.action(description=_("Log out everywhere"), permissions=["change"])
    def log_out_everywhere(self, request: HttpRequest, queryset) -> None:
        count = user_tokens_revoke(users=queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d user logged out everywhere: their tokens no longer work.",
                "%(count)d users logged out everywhere: their tokens no longer work.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
