"""The payment notify as a typical wechatpy user writes it (wechatpy's docs and issues)."""

from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.pay import WeChatPay

from shop.models import Order

wechat_pay = WeChatPay(settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID)
BEIJING = timezone(timedelta(hours=8))


def reply(return_code, return_msg):
    xml = (
        f"<xml><return_code><![CDATA[{return_code}]]></return_code>"
        f"<return_msg><![CDATA[{return_msg}]]></return_msg></xml>"
    )
    return HttpResponse(xml, content_type="text/xml")


@csrf_exempt
@require_POST
def wxnotify(request):
    try:
        result = wechat_pay.parse_payment_result(request.body)
    except InvalidSignatureException:
        return reply("FAIL", "invalid signature")
    if result.get("return_code") != "SUCCESS" or result.get("result_code") != "SUCCESS":
        return reply("SUCCESS", "OK")  # not a payment; nothing to do
    with transaction.atomic():
        try:
            order = Order.objects.select_for_update().get(out_trade_no=result["out_trade_no"])
        except Order.DoesNotExist:
            return reply("FAIL", "unknown order")
        if order.total_fee != result["total_fee"]:
            return reply("FAIL", "amount mismatch")
        if order.status != Order.PAID:
            order.status = Order.PAID
            order.transaction_id = result["transaction_id"]
            paid_at = datetime.strptime(result["time_end"], "%Y%m%d%H%M%S")
            order.paid_at = paid_at.replace(tzinfo=BEIJING)
            order.save(update_fields=["status", "transaction_id", "paid_at"])
    return reply("SUCCESS", "OK")
