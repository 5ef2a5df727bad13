from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    # session_key is not editable and listed nowhere: it never reaches a page (DESIGN §6.3).
    list_display = ["username", "openid", "is_staff", "last_wechat_login", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["username", "=openid", "=unionid", "email"]
    search_help_text = _("Username or email (contains), or an openid or unionid (exactly).")
    readonly_fields = ["openid", "unionid", "last_wechat_login", "last_login", "date_joined"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        (_("WeChat"), {"fields": ["openid", "unionid", "last_wechat_login"]}),
    ]
