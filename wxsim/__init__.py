"""wxsim: a local WeChat simulator (mini-program login, WeChat Pay API v2 and v3, and the
mini-program server API: access_token, order shipping management, subscribe messages, message
push) for development, demos, end-to-end tests and benchmarks.

Independent of the shop on purpose: it imports nothing from Django or the shop's apps and
has its own signing code, so a signing bug in the shop shows up as a failed end-to-end test.
Run it with ``python -m wxsim``; see README.md beside this file. A bare §n anywhere in
this package is a section of docs/protocol/wechat-pay-v2.md (§9 for the login), except in
the modules of the server API (miniapi, tokens, shipping, subscribe, push), which say they
cite docs/protocol/miniprogram-server-api.md, and the v3 modules (v3*), which say they cite
docs/protocol/wechat-pay-v3.md.
"""
