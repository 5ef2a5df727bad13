"""WeChat's wire protocols, with no Django in them: each package reads like WeChat's
documentation (docs/protocol/) and is tested against its official vectors.

- ``wechat.pay_v2``: WeChat Pay API v2 (XML, MD5/HMAC-SHA256).
- ``wechat.pay_v3``: WeChat Pay API v3 (JSON, SHA256-RSA, AES-256-GCM).
- ``wechat.miniprogram``: the mini-program server API (code2Session, access_token,
  order shipping management, subscribe messages).
"""
