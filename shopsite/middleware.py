from django.middleware.locale import LocaleMiddleware
from django.utils import translation

STAFF_PREFIX = "/admin/"


class StaffLocaleMiddleware(LocaleMiddleware):
    """Admin in the staff member's language; everything else in English.

    Staff get Chinese or English from the language cookie (the switch in admin's header),
    Accept-Language, or LANGUAGE_CODE. The JSON API and WeChat's callbacks answer in
    English whatever the phone's language: all of an error body reads the same, and a
    mini-program can rely on the texts it shows or logs.
    """

    def process_request(self, request):
        if request.path_info.startswith(STAFF_PREFIX):
            super().process_request(request)
        else:
            translation.activate("en")
            request.LANGUAGE_CODE = "en"

    def process_response(self, request, response):
        if request.path_info.startswith(STAFF_PREFIX):
            return super().process_response(request, response)
        return response
