from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import user_login_with_code
from core.api import StrictSerializer, error_responses
from core.throttling import FailOpenScopedRateThrottle


# The login code and the token we answer with are credentials (the code for a few
# minutes): no error report shows them. sensitive_post_parameters needs Django's
# HttpRequest, which only dispatch() receives.
@method_decorator(sensitive_post_parameters("code"), name="dispatch")
class LoginApi(APIView):
    """``POST /accounts/login``: a ``wx.login()`` code in, our bearer token out."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = (FailOpenScopedRateThrottle,)
    throttle_scope = "login"

    @extend_schema_serializer(component_name="LoginInput")
    class InputSerializer(StrictSerializer):
        code = serializers.CharField(
            max_length=128, trim_whitespace=True, help_text="The code from wx.login()."
        )

    @extend_schema_serializer(component_name="LoginOutput")
    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        token_type = serializers.ChoiceField(choices=["Bearer"])
        expires_in = serializers.IntegerField(help_text="Seconds the token stays valid.")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 429, 502, 503)},
    )
    @method_decorator(sensitive_variables("serializer", "result"))
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A refused login is a LoginRefused, answered by core.api's exception handler.
        result = user_login_with_code(code=serializer.validated_data["code"])
        return Response(
            {"token": result.token, "token_type": "Bearer", "expires_in": result.expires_in}
        )
