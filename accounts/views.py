from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import wxlogin
from accounts.services import user_login_with_code
from shopsite.api import StrictSerializer, api_error


class LoginApi(APIView):
    """``POST /accounts/login``: a ``wx.login()`` code in, our bearer token out."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "login"

    class InputSerializer(StrictSerializer):
        code = serializers.CharField(max_length=128, trim_whitespace=True)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = user_login_with_code(code=serializer.validated_data["code"])
        except wxlogin.InvalidCode as exc:
            return api_error(
                status.HTTP_400_BAD_REQUEST,
                "The login code is invalid, expired or already used; call wx.login() again.",
                errcode=exc.errcode,
            )
        except wxlogin.RateLimited as exc:
            return api_error(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "WeChat is rate-limiting logins for this user; try again in a minute.",
                errcode=exc.errcode,
            )
        except wxlogin.WeChatUnavailable as exc:
            return api_error(
                status.HTTP_502_BAD_GATEWAY, "WeChat login is unavailable.", errcode=exc.errcode
            )
        return Response(
            {"token": result.token, "token_type": "Bearer", "expires_in": result.expires_in}
        )
