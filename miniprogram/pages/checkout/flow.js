// The checkout logic, kept out of Page() so it can be tested without the
// mini-program runtime. Every function returns or reports plain "patches"
// ({state, message, outTradeNo, totalFee}) that the page hands to setData.
//
// States: idle → paying → (cancelled | failed | confirming → paid).
const { call } = require('../../utils/promisify')

const defaultSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Amounts are integers in fen; shown in yuan.
const formatFen = (fen) => `¥${(fen / 100).toFixed(2)}`

const cartTotal = (items) => items.reduce((sum, it) => sum + it.price * it.quantity, 0)

// wx.requestPayment as a Promise: 'ok' or 'cancel'; rejects on any other
// failure (bad signature, expired prepay_id…) with WeChat's errMsg.
// `payment` is passed as the server built it: timeStamp, nonceStr, package,
// signType, paySign — exactly the signed values, nothing re-formatted.
async function requestPayment(payment) {
  try {
    await call('requestPayment', { ...payment })
    return 'ok'
  } catch (fail) {
    const errMsg = (fail && fail.errMsg) || 'requestPayment:fail'
    if (errMsg === 'requestPayment:fail cancel') return 'cancel'
    throw Object.assign(new Error(errMsg), { errMsg })
  }
}

// The success callback of requestPayment is NOT proof of payment: only the
// backend knows, once WeChat's notify reached it. Ask until the order leaves
// `unpaid`; give up after `tries` and return the last status seen (or null).
async function waitForPaid(api, outTradeNo, { tries = 15, intervalMs = 1000, sleep = defaultSleep } = {}) {
  let status = null
  for (let i = 0; i < tries; i++) {
    if (i > 0) await sleep(intervalMs)
    try {
      status = (await api.getOrder(outTradeNo)).status
    } catch (err) {
      continue // a network blip while polling is no reason to stop
    }
    if (status !== 'unpaid') return status
  }
  return status
}

// What to show when creating (or re-paying) the order failed.
function orderFailed(err, outTradeNo) {
  const data = err.data || {}
  const detail = err.detail || err.message
  if (err.statusCode === 409 && typeof data.total_fee === 'number') {
    // Prices changed since the cart was shown: show the server's total; the
    // next tap sends it, so the user agrees to what is charged.
    const message = `The price is now ${formatFen(data.total_fee)}. Check it and pay again.`
    return { state: 'failed', message, totalFee: data.total_fee, outTradeNo: '' }
  }
  if (err.statusCode === 409 && data.status === 'paid') {
    return { state: 'paid', message: 'This order is already paid.', outTradeNo }
  }
  if (err.statusCode === 409 || err.statusCode === 404) {
    // The order is closed/refunded or not ours: the next tap starts a new one.
    return { state: 'failed', message: detail, outTradeNo: '' }
  }
  // 502 (WeChat refused / unreachable) on a new order still created it and
  // tells us its number: keep it so the next tap pays that order, not a new one.
  return { state: 'failed', message: detail, outTradeNo: data.out_trade_no || outTradeNo || '' }
}

function afterPolling(status, outTradeNo) {
  if (status === 'paid') return { state: 'paid', message: 'Paid. Thank you!', outTradeNo }
  if (status === 'closed' || status === 'refunded') {
    return { state: 'failed', message: `The order is ${status}. Please contact us.`, outTradeNo }
  }
  // Still unpaid (or unknown) after all tries: the notify may just be late.
  // Never claim "paid" on the front-end's word.
  return { state: 'confirming', message: 'Still confirming your payment. Check your orders in a moment.', outTradeNo }
}

// The whole pay() flow. `outTradeNo` set → pay that existing unpaid order again
// ({out_trade_no}); otherwise create one from `items` with the shown `totalFee`.
// Reports each step through onState and resolves with the final patch.
async function checkout({ api = require('../../utils/api'), items, totalFee, outTradeNo, onState = () => {}, ...pollOptions }) {
  const report = (patch) => { onState(patch); return patch }
  report({ state: 'paying', message: '' })

  let order
  try {
    // Send only what the API takes: names and prices in the cart are display-only.
    const lines = (items || []).map(({ product_id, quantity }) => ({ product_id, quantity }))
    order = outTradeNo ? await api.payOrder(outTradeNo) : await api.createOrder(lines, totalFee)
  } catch (err) {
    return report(orderFailed(err, outTradeNo))
  }
  const no = order.out_trade_no

  let result
  try {
    result = await requestPayment(order.payment)
  } catch (err) {
    return report({ state: 'failed', message: `Payment failed: ${err.errMsg}`, outTradeNo: no })
  }
  if (result === 'cancel') {
    // The order stays unpaid on the server; the next tap pays it again.
    return report({ state: 'cancelled', message: 'Payment cancelled.', outTradeNo: no })
  }

  report({ state: 'confirming', message: 'Confirming payment…', outTradeNo: no })
  return report(afterPolling(await waitForPaid(api, no, pollOptions), no))
}

module.exports = { checkout, requestPayment, waitForPaid, orderFailed, afterPolling, formatFen, cartTotal }
