// The shop endpoints the mini-program uses, one function each (see the
// backend README's API section). Amounts are integers in fen.
const { get, post } = require('./request')

module.exports = {
  // New order. `totalFee` is the total the user saw: the server answers 409
  // (with its own `total_fee`) instead of charging a different amount.
  createOrder: (items, totalFee) => post('/payment/order', totalFee === undefined ? { items } : { items, total_fee: totalFee }),
  // Pay an existing unpaid order again (after a cancel or a failure).
  payOrder: (outTradeNo) => post('/payment/order', { out_trade_no: outTradeNo }),
  getOrder: (outTradeNo) => get(`/orders/${encodeURIComponent(outTradeNo)}`),
  closeOrder: (outTradeNo) => post(`/orders/${encodeURIComponent(outTradeNo)}/close`),
}
