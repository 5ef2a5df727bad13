// The checkout logic, kept out of Page() so it can be tested without the
// mini-program runtime. Every function returns or reports plain "patches"
// ({state, message, outTradeNo, totalFee}) that the page hands to setData.
//
// States: idle → paying → (cancelled | failed | confirming → paid).
const { call } = require('../../utils/promisify')
const { formatFen } = require('../../utils/money')

const defaultSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const cartTotal = (items) => items.reduce((sum, it) => sum + it.price * it.quantity, 0)

const REMARK_MAX = 200 // characters, as the server counts them (code points)

// The remark as sent: trimmed, '' when blank. `error` when it is too long.
function normalizeRemark(text) {
  const remark = typeof text === 'string' ? text.trim() : ''
  if ([...remark].length > REMARK_MAX) return { remark, error: `The remark is too long: at most ${REMARK_MAX} characters.` }
  return { remark }
}

// One key per checkout attempt (Idempotency-Key: 1 to 64 of A-Z a-z 0-9 _ -).
// It only has to be unique among one shopper's orders, so Math.random is enough.
const KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
function newIdempotencyKey(random = Math.random) {
  let key = `${Date.now().toString(36)}-`
  for (let i = 0; i < 22; i++) key += KEY_ALPHABET[Math.floor(random() * KEY_ALPHABET.length)]
  return key
}

// The answer to a new order never came, or came from something that could not
// say whether the order was made (a 5xx without its out_trade_no): the next try
// must reuse the same Idempotency-Key so it gets that order, not a second one.
const answerLost = (err) => err.statusCode === 0 || (err.statusCode >= 500 && !(err.data && err.data.out_trade_no))

// A 400 about the `address` field (missing when something ships, or incomplete):
// named in `errors` (validation), or at least in `detail` (a refusal without `errors`).
function namesAddress(err) {
  if (err.statusCode !== 400) return false
  const errors = err.data && err.data.errors
  if (errors && typeof errors === 'object' && 'address' in errors) return true
  return /\baddress\b/i.test(err.detail || '')
}

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

// What to show when creating (or re-paying) the order failed. `sentAddress`:
// whether the refused request carried an address.
function orderFailed(err, outTradeNo, { sentAddress = false } = {}) {
  const data = err.data || {}
  const detail = err.detail || err.message
  if (namesAddress(err)) {
    // The next tap asks for an address (again) before ordering.
    const message = sentAddress
      ? `The delivery address is incomplete (${detail}). Choose it again.`
      : 'This order needs a delivery address: choose one, then pay.'
    return { state: 'failed', message, needsAddress: true, address: null, outTradeNo: '' }
  }
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

// POST /payment/order for a new order; a network failure is retried once, a
// second later, with the same key (so the server answers with the same order if the
// first request made one).
async function createOrder(api, lines, totalFee, options, sleep) {
  try {
    return await api.createOrder(lines, totalFee, options)
  } catch (err) {
    if (err.statusCode !== 0) throw err
    await sleep(1000)
    return api.createOrder(lines, totalFee, options)
  }
}

// The whole pay() flow. `outTradeNo` set → pay that existing unpaid order again
// ({out_trade_no}); otherwise create one from `items` with the shown `totalFee`,
// `address` (API shape, or null when nothing ships), `remark` (normalized) and
// `idempotencyKey` (one per attempt: pass the one a lost answer handed back).
// Reports each step through onState and resolves with the final patch; a patch
// with `idempotencyKey` means "the answer was lost: retry with this key".
async function checkout({
  api = require('../../utils/api'), items, totalFee, outTradeNo, address = null, remark = '',
  idempotencyKey, onState = () => {}, ...pollOptions
}) {
  const report = (patch) => { onState(patch); return patch }
  report({ state: 'paying', message: '' })

  let order
  const key = outTradeNo ? '' : idempotencyKey || newIdempotencyKey()
  try {
    // Send only what the API takes: names and prices in the cart are display-only.
    const lines = (items || []).map(({ product_id, quantity }) => ({ product_id, quantity }))
    order = outTradeNo
      ? await api.payOrder(outTradeNo)
      : await createOrder(api, lines, totalFee, { address, remark, idempotencyKey: key }, pollOptions.sleep || defaultSleep)
  } catch (err) {
    const patch = orderFailed(err, outTradeNo, { sentAddress: Boolean(address) })
    if (key && answerLost(err)) patch.idempotencyKey = key
    return report(patch)
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

module.exports = {
  checkout, requestPayment, waitForPaid, orderFailed, afterPolling, formatFen, cartTotal,
  normalizeRemark, newIdempotencyKey, REMARK_MAX,
}
