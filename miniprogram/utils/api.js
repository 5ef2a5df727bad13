// The shop endpoints the mini-program uses, one function each (see the
// backend README's API section). Amounts are integers in fen.
const config = require('./config')
const { get, post } = require('./request')

// A page's `next`/`previous` link is an absolute URL; request() wants a path.
// The server may spell its own origin differently from baseUrl (http behind a
// TLS proxy), so anything before the path is dropped.
function pathOf(url) {
  if (url.startsWith(config.baseUrl + '/')) return url.slice(config.baseUrl.length)
  return url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]+/i, '')
}

// Body of a new order: `address` and `remark` only when given (the server
// refuses unknown or empty fields it does not expect).
function newOrderBody(items, totalFee, { address, remark } = {}) {
  const body = { items }
  if (totalFee !== undefined) body.total_fee = totalFee
  if (address) body.address = address
  if (remark) body.remark = remark
  return body
}

module.exports = {
  pathOf,
  // Catalogue: public, no login needed. `next` is the previous page's `next`.
  listProducts: (next) => get(next ? pathOf(next) : '/products', { auth: false }),
  getProduct: (id) => get(`/products/${encodeURIComponent(id)}`, { auth: false }),
  // New order. `totalFee` is the total the user saw: the server answers 409
  // (with its own `total_fee`) instead of charging a different amount.
  // `idempotencyKey`: the same key on a retry gets the same order, not a second one.
  createOrder: (items, totalFee, { address, remark, idempotencyKey } = {}) => post(
    '/payment/order',
    newOrderBody(items, totalFee, { address, remark }),
    idempotencyKey ? { header: { 'Idempotency-Key': idempotencyKey } } : undefined,
  ),
  // Pay an existing unpaid order again (after a cancel or a failure).
  payOrder: (outTradeNo) => post('/payment/order', { out_trade_no: outTradeNo }),
  listOrders: (next) => get(next ? pathOf(next) : '/orders'),
  getOrder: (outTradeNo) => get(`/orders/${encodeURIComponent(outTradeNo)}`),
  closeOrder: (outTradeNo) => post(`/orders/${encodeURIComponent(outTradeNo)}/close`),
  // The shopper confirms a shipped order arrived: 200 with the order, 409 if not shipped.
  receiveOrder: (outTradeNo) => post(`/orders/${encodeURIComponent(outTradeNo)}/receive`),
}
