"""WeChat's side of shipping (docs/INVARIANTS.md §8): order shipping management
(upload_shipping_info), the access_token, message push events and subscribe messages,
run as background tasks. Sits beside payments, above orders: it reads orders and changes
them only through orders' services; it never speaks WeChat Pay."""
